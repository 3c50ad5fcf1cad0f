"""The network head: interfaces, default route, reachability of hosts, and the link state.

Every life() takes a snapshot (psutil for the interfaces, ``/proc/net/route`` for the default
route, a TCP connection attempt per configured host) and derives the link state: *up* when the
required hosts answer (any or all of them, ``require``) and, with ``require_default_route``,
an IPv4 default route leaves through an interface that is up. A host *answers* when the
connection is accepted or, unless ``require_open``, refused (a refusal proves the host is there).

Changes of the link state are sent at once to the main head (subject ``link_changed``), which
passes them on to its subscribers; changes of anything else in the snapshot are sent as
``network_state``. ``network`` is answered with the latest snapshot, from any route.
"""

from __future__ import annotations

import errno
import fnmatch
import socket
import struct
import time
from typing import Any

from ..filters import message_filter
from .common import RobotHead

RTF_UP = 0x1
RTF_GATEWAY = 0x2


def default_routes(text: str) -> list[dict[str, Any]]:
    """Return the IPv4 default routes in the text of /proc/net/route, best (lowest metric) first."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, gateway, flags, metric, mask = (
            fields[0], fields[1], fields[2], int(fields[3], 16), int(fields[6]), fields[7])
        if destination != '00000000' or mask != '00000000' or not flags & RTF_UP:
            continue
        routes.append({
            'interface': iface,
            'gateway': socket.inet_ntoa(struct.pack('<I', int(gateway, 16))),
            'via_gateway': bool(flags & RTF_GATEWAY),
            'metric': metric,
        })
    return sorted(routes, key=lambda r: r['metric'])


def read_default_route(path: str = '/proc/net/route') -> dict[str, Any] | None:
    """Return the best IPv4 default route of this machine, or None."""
    try:
        with open(path, encoding='ascii') as f:
            routes = default_routes(f.read())
    except OSError:
        return None
    return routes[0] if routes else None


def interfaces(patterns: list[str]) -> dict[str, dict[str, Any]]:
    """Return the interfaces whose names match patterns: up, speed, mtu and addresses."""
    import psutil

    stats = psutil.net_if_stats()
    addrs = psutil.net_if_addrs()
    out = {}
    for name in sorted(set(stats) | set(addrs)):
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        st = stats.get(name)
        out[name] = {
            'up': bool(st and st.isup),
            'speed': st.speed if st else 0,
            'mtu': st.mtu if st else 0,
            'addresses': sorted(a.address for a in addrs.get(name, ())
                                if a.family in (socket.AF_INET, socket.AF_INET6)),
        }
    return out


def probe(host: str, port: int, timeout: float, require_open: bool = False) -> dict[str, Any]:
    """Try a TCP connection to host:port; tell whether the host answered, and how."""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            outcome = 'open'
    except ConnectionRefusedError:
        outcome = 'refused'
    except socket.timeout:
        outcome = 'timeout'
    except OSError as exc:
        outcome = errno.errorcode.get(exc.errno, 'error') if exc.errno else type(exc).__name__
    answered = outcome == 'open' or (outcome == 'refused' and not require_open)
    return {'host': host, 'port': port, 'outcome': outcome, 'reachable': answered,
            'seconds': round(time.monotonic() - started, 4)}


def link_state(settings: dict, route: dict | None, ifaces: dict, hosts: dict) -> tuple[bool, str]:
    """Return (up, reason) from a snapshot and the head's settings."""
    if settings['require_default_route']:
        if route is None:
            return False, 'no default route'
        if route['interface'] in ifaces and not ifaces[route['interface']]['up']:
            return False, f'the default route\'s interface {route["interface"]} is down'
    if hosts:
        answering = [name for name, h in hosts.items() if h['reachable']]
        silent = [name for name in hosts if name not in answering]
        if settings['require'] == 'all' and silent:
            return False, f'not reachable: {", ".join(silent)}'
        if not answering:
            return False, f'no configured host is reachable ({", ".join(silent)})'
        return True, f'reachable: {", ".join(answering)}'
    return True, 'default route present' if route else 'nothing to check'


class NetworkHead(RobotHead):
    """Watch the network; kwargs['settings'] is the service's heads.network section."""

    def birth(self) -> None:
        self.settings = self.kwargs['settings']
        self.notify = self.kwargs.get('notify', 'service')
        self.snapshot: dict[str, Any] | None = None
        self.changes = 0

    def life(self) -> None:
        self.observe()
        self.mailman()

    def observe(self) -> dict[str, Any]:
        """Take a snapshot; tell the main head about changes."""
        s = self.settings
        route = read_default_route()
        ifaces = interfaces(s['interfaces'])
        hosts = {name: probe(h['host'], h['port'], s['probe_timeout'], h['require_open'])
                 for name, h in s['hosts'].items()}
        up, reason = link_state(s, route, ifaces, hosts)
        previous = self.snapshot
        now = time.time()
        link_changed = previous is None or previous['up'] != up
        snapshot = {
            'up': up, 'reason': reason, 'since': now if link_changed else previous['since'],
            'default_route': route, 'interfaces': ifaces,
            'hosts': {n: {k: v for k, v in h.items() if k != 'seconds'} for n, h in hosts.items()},
            'time': now,
        }
        self.snapshot = snapshot
        if link_changed:
            self.changes += 1
            log = self.logger.info if up else self.logger.warning
            log('link %s: %s', 'up' if up else 'down', reason)
            self.tell(self.notify, 'link_changed', {'up': up, 'reason': reason,
                                                    'since': snapshot['since'],
                                                    'changes': self.changes})
        if previous is None or _shape(previous) != _shape(snapshot):
            self.tell(self.notify, 'network_state', snapshot)
        return snapshot

    @message_filter(route=None, subject='network')
    def answer(self, message: dict) -> None:
        """Answer with the latest snapshot (taking one if there is none yet)."""
        self.respond(message, self.snapshot or self.observe())


def _shape(snapshot: dict) -> Any:
    """What counts as a change of the network (not timings or timestamps)."""
    return (snapshot['up'], snapshot['reason'], snapshot['default_route'],
            snapshot['interfaces'], snapshot['hosts'])
