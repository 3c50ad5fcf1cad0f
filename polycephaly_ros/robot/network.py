"""The network head: interfaces, default route, reachability of hosts, and the link state.

Every life() takes a snapshot (psutil for the interfaces, ``/proc/net/route`` for the default
route, a TCP connection attempt per configured host) and derives the link state: *up* when the
required hosts answer (any or all of them, ``require``) and, with ``require_default_route``,
an IPv4 default route leaves through an interface that is up. A host *answers* when the
connection is accepted or, unless ``require_open``, refused (a refusal proves the host is there).

Changes of the link state are sent at once to the main head (subject ``link_changed``), which
passes them on to its subscribers; changes of anything else in the snapshot are sent as
``network_state``. ``network`` is answered with the latest snapshot, from any route.

NetworkManager: unless ``networkmanager`` is false, the head also follows
``org.freedesktop.NetworkManager`` on ``networkmanager_bus`` (the system bus by default) through
its D-Bus signals (:mod:`.networkmanager`): a change there (connectivity, state, a device's
state) wakes the head at once, which takes a snapshot then, without waiting for its next life().
While NetworkManager knows the connectivity (not *unknown*), a connectivity below
``networkmanager_require`` (``full`` by default; or ``limited``, ``portal``, ``none``) means the
link is down, whatever the other rules say; at or above it, the other rules decide. Every
snapshot has an ``nm`` part (available or not and why, connectivity, state, devices by
interface). Without NetworkManager (no bus, the name not owned) the head goes on with its own
readings and says so once, and again only when that changes.
"""

from __future__ import annotations

import errno
import fnmatch
import socket
import struct
import threading
import time
from typing import Any

from ..filters import message_filter
from .common import RobotHead
from .networkmanager import CONNECTIVITY, NetworkManagerWatch

#: The head's settings for NetworkManager, and their defaults (read with .get()).
NM_DEFAULTS = {'networkmanager': True, 'networkmanager_bus': 'system',
               'networkmanager_require': 'full'}
#: The subject the head sends itself when NetworkManager changed.
NM_CHANGED = 'networkmanager_changed'

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


def link_state(settings: dict, route: dict | None, ifaces: dict, hosts: dict,
               nm: dict | None = None) -> tuple[bool, str]:
    """Return (up, reason) from a snapshot, NetworkManager's state and the head's settings."""
    if nm and nm.get('available') and nm.get('connectivity'):  # (0: unknown, no say)
        level = nm['connectivity']
        name = CONNECTIVITY.get(level, str(level))
        wanted = settings.get('networkmanager_require', NM_DEFAULTS['networkmanager_require'])
        least = {v: k for k, v in CONNECTIVITY.items()}.get(wanted, 4)
        if level < least:
            return False, f'NetworkManager: connectivity {name}'
        up, reason = link_state(settings, route, ifaces, hosts)
        return up, f'NetworkManager: connectivity {name}; {reason}'
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
        self.nm: NetworkManagerWatch | None = None
        self._nm_said: bool | None = None  # the availability last logged
        self._nm_pending = threading.Event()  # a wake-up is on its way
        nm = {k: self.settings.get(k, v) for k, v in NM_DEFAULTS.items()}
        if nm['networkmanager']:
            self.nm = NetworkManagerWatch(nm['networkmanager_bus'], self._nm_changed)
            self.nm.start()

    def death(self) -> None:
        """Stop following NetworkManager."""
        if self.nm is not None:
            self.nm.close()

    def _nm_changed(self) -> None:
        """Wake the head (from the D-Bus link's thread): NetworkManager changed."""
        if not self._nm_pending.is_set():
            self._nm_pending.set()
            self.tell(self.name, NM_CHANGED)

    @message_filter(subject=NM_CHANGED)
    def networkmanager_changed(self, message: dict) -> None:
        """Take a snapshot now: NetworkManager told of a change."""
        self._nm_pending.clear()
        self.observe()

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
        nm = self.nm.state() if self.nm is not None else {
            'available': False, 'reason': 'not followed (networkmanager: false)'}
        self._say(nm)
        up, reason = link_state(s, route, ifaces, hosts, nm)
        previous = self.snapshot
        now = time.time()
        link_changed = previous is None or previous['up'] != up
        snapshot = {
            'up': up, 'reason': reason, 'since': now if link_changed else previous['since'],
            'default_route': route, 'interfaces': ifaces,
            'hosts': {n: {k: v for k, v in h.items() if k != 'seconds'} for n, h in hosts.items()},
            'nm': nm, 'time': now,
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

    def _say(self, nm: dict) -> None:
        """Log whether NetworkManager is followed: once, and again only when that changes."""
        if self.nm is None or nm['available'] == self._nm_said:
            return
        self._nm_said = nm['available']
        if nm['available']:
            self.logger.info('following NetworkManager on %s', self.nm.link.where)
        else:
            self.logger.info('NetworkManager is not followed (%s): using interfaces, '
                             'default route and hosts only', nm['reason'])

    @message_filter(route=None, subject='network')
    def answer(self, message: dict) -> None:
        """Answer with the latest snapshot (taking one if there is none yet)."""
        self.respond(message, self.snapshot or self.observe())


def _shape(snapshot: dict) -> Any:
    """What counts as a change of the network (not timings or timestamps)."""
    return (snapshot['up'], snapshot['reason'], snapshot['default_route'],
            snapshot['interfaces'], snapshot['hosts'], snapshot['nm'])
