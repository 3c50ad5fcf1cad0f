"""The network head: default route parsing, link state, and link up/down notifications."""

from __future__ import annotations

import copy
import socket

from harness import ask, run_script, until
from polycephaly_ros.robot import config as cfg
from polycephaly_ros.robot.network import NetworkHead, default_routes, link_state, probe

ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
"""


def test_default_route_from_proc_net_route():
    routes = default_routes(ROUTE)
    assert [r['interface'] for r in routes] == ['eth0', 'wlan0']
    assert routes[0]['gateway'] == '192.168.0.1' and routes[0]['via_gateway']
    assert default_routes(ROUTE.splitlines()[0]) == []


def test_link_state_rules():
    s = copy.deepcopy(cfg.DEFAULTS['service']['heads']['network'])
    up = {'a': {'reachable': True}, 'b': {'reachable': False}}
    assert link_state(s, None, {}, up)[0] is True
    assert link_state(dict(s, require='all'), None, {}, up) == (False, 'not reachable: b')
    assert link_state(dict(s, require_default_route=True), None, {}, up) == (
        False, 'no default route')
    route = {'interface': 'eth0'}
    assert link_state(dict(s, require_default_route=True), route,
                      {'eth0': {'up': False}}, up)[0] is False


def listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', 0))
    sock.listen()
    return sock


def test_probe_tells_open_refused_and_required_open():
    sock = listener()
    port = sock.getsockname()[1]
    assert probe('127.0.0.1', port, 1.0)['outcome'] == 'open'
    sock.close()
    refused = probe('127.0.0.1', port, 1.0)
    assert refused['outcome'] == 'refused' and refused['reachable']
    assert not probe('127.0.0.1', port, 1.0, require_open=True)['reachable']


def test_link_down_and_up_are_notified():
    sock = listener()
    port = sock.getsockname()[1]
    s = copy.deepcopy(cfg.DEFAULTS['service']['heads']['network'])
    s.update(probe_timeout=0.5,
             hosts={'peer': {'host': '127.0.0.1', 'port': port, 'require_open': True}})

    def links(main):
        return [m['body'] for m in main.received if m['subject'] == 'link_changed']

    def script(main):
        nonlocal sock
        until(main, lambda: len(links(main)) == 1)
        sock.close()  # the peer goes away: link down
        until(main, lambda: len(links(main)) == 2)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', port))
        sock.listen()
        until(main, lambda: len(links(main)) == 3)
        return links(main), ask(main, 'network', 'network')

    try:
        changes, snapshot = run_script(script, [(NetworkHead, {
            'name': 'network', 'mode': 'thread', 'frequency': 20, 'settings': s,
            'notify': 'main'})], ros=False).outcome
    finally:
        sock.close()
    assert [c['up'] for c in changes] == [True, False, True]
    assert 'peer' in changes[1]['reason']
    assert snapshot['up'] and snapshot['hosts']['peer']['outcome'] == 'open'
    assert 'lo' in snapshot['interfaces'] and snapshot['interfaces']['lo']['up']
