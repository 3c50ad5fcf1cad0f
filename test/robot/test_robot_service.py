"""The system service as a real process: requests over its Unix socket, /diagnostics on ROS."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time

from plain_ros import plain_node
from robot_support import RawClient, procs, socket_of, write_config  # noqa: F401 (fixture)


def test_answers_status_diagnostics_and_controls_heads_over_the_socket(tmp_path, procs):
    config = write_config(tmp_path)
    service = procs.service(config)
    client = RawClient(socket_of(config))
    try:
        status = client.ask('status')
        assert status['subject'] == 'reply' and status['sender'] == 'service'
        body = status['body']
        assert body['pid'] == service.pid and body['ros'] is True
        assert {h['name']: h['state'] for h in body['heads']} == {
            'network': 'running', 'updates': 'running', 'diagnostics': 'running',
            'uds_server': 'running', 'console': 'running'}
        assert stat.S_IMODE(os.stat(socket_of(config)).st_mode) == 0o600

        diagnostics = client.ask('diagnostics')['body']
        assert diagnostics['level'] in ('OK', 'WARN', 'ERROR')
        assert {'cpu', 'memory', 'disks', 'temperatures', 'statuses'} <= set(diagnostics)
        direct = client.ask('diagnostics', recipient='diagnostics')  # the head itself answers
        assert direct['sender'] == 'diagnostics' and direct['body']['hardware_id']

        network = client.ask('network')['body']
        assert network['up'] is True and 'loopback' in network['hosts']

        before = {h['name']: h for h in client.ask('heads')['body']['heads']}
        restarted = client.ask('restart_head', {'head': 'diagnostics'})['body']
        assert restarted['state']['state'] == 'running'
        assert restarted['state']['generation'] == before['diagnostics']['generation'] + 1
        assert restarted['state']['pid'] != before['diagnostics']['pid']
        stopped = client.ask('stop_head', {'head': 'network'})['body']
        assert stopped['state']['state'] == 'stopped'
        assert client.ask('start_head', {'head': 'network'})['body']['state']['state'] == 'running'

        refused = client.ask('stop_head', {'head': 'uds_server'})
        assert refused['subject'] == 'error' and 'came through it' in refused['body']['error']
        unknown = client.ask('restart_head', {'head': 'nosuch'})
        assert unknown['subject'] == 'error' and 'nosuch' in unknown['body']['error']

        scheduled = client.ask('schedule', {'action': 'reboot'})['body']
        assert scheduled['decision']['outcome'] == 'deferred'  # 02:00-05:00 or not idle
        updates = client.ask('updates')['body']
        assert updates['pending'] == ['reboot'] and updates['dry_run'] is True
    finally:
        client.close()
    assert service.stop() == 0


def test_publishes_diagnostic_arrays_on_slash_diagnostics(tmp_path, procs):
    """A plain rclpy subscription (not our library) receives the service's DiagnosticArray."""
    from diagnostic_msgs.msg import DiagnosticArray

    config = write_config(tmp_path)
    received: list = []
    arrived = threading.Event()
    with plain_node('diagnostics_listener') as (node, executor):

        def on_array(message):
            received.append(message)
            arrived.set()

        node.create_subscription(DiagnosticArray, '/diagnostics', on_array, 10)
        service = procs.service(config)
        deadline = time.monotonic() + 30
        while not arrived.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert received, 'no DiagnosticArray on /diagnostics within 30 s\n' + service.log()
        names = [s.name for s in received[0].status]
        assert 'polycephaly: cpu' in names and 'polycephaly: memory' in names
        assert any(n.startswith('polycephaly: disk') for n in names)
        cpu = next(s for s in received[0].status if s.name == 'polycephaly: cpu')
        assert cpu.level in (b'\x00', b'\x01', b'\x02') and cpu.hardware_id
        assert {kv.key for kv in cpu.values} >= {'percent', 'count'}
        assert received[0].header.stamp.sec > 0

        # What `ros2 param list /service` asks: the settings are parameters of the main node.
        from rcl_interfaces.srv import ListParameters

        lister = node.create_client(ListParameters, '/service/list_parameters')
        assert lister.wait_for_service(timeout_sec=10)
        future = lister.call_async(ListParameters.Request())
        executor.spin_until_future_complete(future, timeout_sec=10)
        names = set(future.result().result.names)
        assert {'heads.updates.dry_run', 'heads.diagnostics.rate', 'robot.socket_path',
                'uds.enabled'} <= names


def test_every_request_is_answered_and_none_holds_up_the_others(tmp_path, procs):
    config = write_config(tmp_path)
    service = procs.service(config)
    client = RawClient(socket_of(config))
    try:
        unknown = client.ask('make_coffee')
        assert unknown['subject'] == 'error'
        assert "unknown subject 'make_coffee'" in unknown['body']['error']
        assert 'status' in unknown['body']['error'] and 'restart_head' in unknown['body']['error']

        client.ask('schedule', {'action': 'reboot'})
        assert 'reboot' in client.ask('status')['body']['updates']['pending']
        client.ask('unschedule', {'action': 'reboot'})
        assert 'reboot' not in client.ask('status')['body']['updates']['pending']

        # A head that will not stop (SIGSTOPped): its stop_head is answered only after the
        # 5 s threads_timeout, and meanwhile status is answered at once.
        diagnostics = next(h for h in client.ask('heads')['body']['heads']
                           if h['name'] == 'diagnostics')
        os.kill(diagnostics['pid'], signal.SIGSTOP)
        asked = time.monotonic()
        client.send(sender=client.name, recipient='service', subject='stop_head',
                    body={'head': 'diagnostics'}, threadid='slow-stop', threadindex=1)
        status = client.ask('status')
        answered_status = time.monotonic() - asked
        stopped = client.recv()
        answered_stop = time.monotonic() - asked
        assert status['subject'] == 'reply' and stopped['threadid'] == 'slow-stop'
        assert stopped['body']['state']['state'] == 'stopped'
        assert answered_status < 2.5 < answered_stop  # (before: status waited for the stop)
    finally:
        client.close()
    assert service.stop() == 0


def test_one_message_without_a_sender_no_longer_stops_the_service(tmp_path, procs):
    """Issue 12's first attack: one frame with no sender made the service exit 1 (KeyError)."""
    from ros_peer import PeerProcess

    config = write_config(tmp_path)
    service = procs.service(config, '--namespace', '/attack')
    client = RawClient(socket_of(config))
    try:
        assert client.ask('status')['subject'] == 'reply'
        # Over the socket: each refused with an error naming the header.
        for subject in ('subscribe', 'unsubscribe'):
            client.send_line(f'{{"recipient":"service","subject":"{subject}"}}'.encode())
            assert "missing header 'sender'" in client.recv()['body']['error']
        client.send_line(b'{"recipient":"nobody","subject":"x","sender":"c",'
                         b'"threadindex":18446744073709551615}')  # (killed the route head)
        assert "'threadindex'" in client.recv()['body']['error']
        # Over the graph, by anyone: nobody to answer, so a good request after them shows
        # they were read (one writer, one topic: in order) and the service lives on.
        with PeerProcess('intruder', '/attack', inbox='json') as peer:
            for subject in ('subscribe', 'unsubscribe'):
                peer.command(cmd='send', to='service', mode='json',
                             text=f'{{"recipient":"service","subject":"{subject}"}}')
            peer.command(cmd='send', to='service', mode='json',
                         envelope={'subject': 'status', 'threadid': 'after'})
            assert peer.received(lambda e: e['threadid'] == 'after')['subject'] == 'reply'
        status = client.ask('status')['body']
        assert all(h['state'] == 'running' and h['exits'] == 0 for h in status['heads'])
        assert service.popen.poll() is None
    finally:
        client.close()
    assert service.stop() == 0
