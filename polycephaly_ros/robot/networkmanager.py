"""Follow NetworkManager over D-Bus: its connectivity, its state and its devices' states.

:class:`NetworkManagerWatch` keeps a :class:`~polycephaly_ros.routes.dbus.connection.BusLink`
to a bus (the system bus by default) and follows ``org.freedesktop.NetworkManager`` there by
its signals alone, no polling:

* the manager (``/org/freedesktop/NetworkManager``): properties ``Connectivity`` (u) and
  ``State`` (u) read with ``org.freedesktop.DBus.Properties.GetAll`` and followed through
  ``org.freedesktop.DBus.Properties.PropertiesChanged`` and its ``StateChanged(u)`` signal;
  its devices from ``GetDevices()``, then ``DeviceAdded(o)`` and ``DeviceRemoved(o)``;
* each device: ``Interface`` (s) and ``State`` (u) of ``org.freedesktop.NetworkManager.Device``
  read with ``GetAll``, followed through ``PropertiesChanged`` and ``StateChanged(uuu)``;
* the name itself through the bus daemon's ``NameOwnerChanged``: NetworkManager that starts
  later is read then, one that goes away leaves the watch *unavailable*.

Every change calls ``on_change()`` (in the link's thread: it should only wake its owner);
:meth:`NetworkManagerWatch.state` returns a copy of what is known, from any thread.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from typing import Any, Callable

from dbus_fast import Message, MessageType

from ..routes.dbus.connection import BusLink, ask_daemon
from ..routes.dbus.interface import describe

_log = logging.getLogger(__name__)

NM = 'org.freedesktop.NetworkManager'
NM_PATH = '/org/freedesktop/NetworkManager'
NM_DEVICE = 'org.freedesktop.NetworkManager.Device'
PROPERTIES = 'org.freedesktop.DBus.Properties'

#: NMConnectivityState.
CONNECTIVITY = {0: 'unknown', 1: 'none', 2: 'portal', 3: 'limited', 4: 'full'}
#: NMState.
STATES = {0: 'unknown', 10: 'asleep', 20: 'disconnected', 30: 'disconnecting',
          40: 'connecting', 50: 'connected_local', 60: 'connected_site',
          70: 'connected_global'}
#: NMDeviceState.
DEVICE_STATES = {0: 'unknown', 10: 'unmanaged', 20: 'unavailable', 30: 'disconnected',
                 40: 'prepare', 50: 'config', 60: 'need_auth', 70: 'ip_config',
                 80: 'ip_check', 90: 'secondaries', 100: 'activated', 110: 'deactivating',
                 120: 'failed'}


def _unavailable(reason: str) -> dict[str, Any]:
    return {'available': False, 'reason': reason, 'connectivity': None, 'state': None,
            'devices': {}}


class NetworkManagerWatch:
    """Follow NetworkManager on a bus; see the module documentation."""

    def __init__(self, bus: str = 'system', on_change: Callable[[], None] = lambda: None,
                 backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        self.bus_spec = bus
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = _unavailable(f'not connected to {describe(bus)}')
        self._paths: dict[str, dict[str, Any]] = {}  # device path -> {'interface', 'state'}
        self._owner: str | None = None
        self._manager: dict[str, Any] = {'connectivity': 0, 'state': 0}
        self._reading: str | None = None  # NM's unique name while _read() reads
        self._missed = False  # a signal came while reading
        self._generation = 0  # bumped at every (re)read, so a stale read is dropped
        self.link = BusLink(bus, name='networkmanager', on_connect=self._on_connect,
                            on_message=self._on_message, on_lost=self._on_lost,
                            backoff=backoff)

    # -- any thread ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (return after the first attempt, either way); keep reconnecting."""
        self.link.start()

    def close(self) -> None:
        """Disconnect and stop the link's thread."""
        self.link.close()

    def state(self) -> dict[str, Any]:
        """Return what is known of NetworkManager now (a copy)."""
        with self._lock:
            return copy.deepcopy(self._state)

    # -- the link's thread ----------------------------------------------------------------------
    def _set(self, state: dict[str, Any]) -> None:
        with self._lock:
            changed = state != self._state
            self._state = state
        if changed:
            try:
                self._on_change()
            except Exception:  # (the owner's business; the link goes on)
                _log.exception('NetworkManager: on_change failed')

    def _publish(self, manager: dict[str, Any]) -> None:
        devices = {d['interface']: {'state': d['state'],
                                    'state_name': DEVICE_STATES.get(d['state'], str(d['state'])),
                                    'path': path}
                   for path, d in sorted(self._paths.items()) if d.get('interface')}
        self._set({'available': True, 'reason': f'NetworkManager on {self.link.where}',
                   'connectivity': manager['connectivity'],
                   'connectivity_name': CONNECTIVITY.get(manager['connectivity'],
                                                         str(manager['connectivity'])),
                   'state': manager['state'],
                   'state_name': STATES.get(manager['state'], str(manager['state'])),
                   'devices': devices})

    async def _on_connect(self, bus: Any) -> None:
        for rule in (f"type='signal',sender='{NM}'",
                     "type='signal',sender='org.freedesktop.DBus',"
                     f"member='NameOwnerChanged',arg0='{NM}'"):
            await ask_daemon(bus, 'AddMatch', 's', [rule])
        (has_owner,) = await ask_daemon(bus, 'NameHasOwner', 's', [NM])
        if not has_owner:
            self._gone(f'{NM} is not on {self.link.where}')
            return
        await self._read(bus)

    def _on_lost(self) -> None:
        self._gone(f'lost the connection to {self.link.where}')

    def _gone(self, reason: str) -> None:
        self._generation += 1
        self._owner, self._paths = None, {}
        self._set(_unavailable(reason))

    async def _call(self, bus: Any, path: str, interface: str, member: str,
                    signature: str = '', body: list | None = None) -> list[Any]:
        reply = await bus.call(Message(destination=NM, path=path, interface=interface,
                                       member=member, signature=signature, body=body or []))
        if reply.message_type is MessageType.ERROR:
            raise RuntimeError(f'{member} on {path}: {reply.error_name}: {reply.body}')
        return reply.body

    async def _props(self, bus: Any, path: str, interface: str) -> dict[str, Any]:
        (props,) = await self._call(bus, path, PROPERTIES, 'GetAll', 's', [interface])
        return {k: v.value for k, v in props.items()}

    async def _read_device(self, bus: Any, path: str) -> dict[str, Any]:
        props = await self._props(bus, path, NM_DEVICE)
        return {'interface': props.get('Interface', ''), 'state': int(props.get('State', 0))}

    async def _read(self, bus: Any) -> None:
        """Read the manager and its devices afresh (at connection, or when NM appears).

        A signal from NetworkManager that comes while reading may describe a change the
        answers missed: then it reads again (a few times at most).
        """
        self._generation += 1
        generation = self._generation
        for _ in range(5):
            try:
                (owner,) = await ask_daemon(bus, 'GetNameOwner', 's', [NM])
                self._reading, self._missed = owner, False
                props = await self._props(bus, NM_PATH, NM)
                (paths,) = await self._call(bus, NM_PATH, NM, 'GetDevices')
                devices = {p: await self._read_device(bus, p) for p in paths}
            except Exception as exc:  # (NM went away meanwhile, or answered an error)
                if generation == self._generation:
                    self._gone(f'cannot read {NM}: {exc}')
                return
            finally:
                self._reading = None
            if generation != self._generation:
                return  # a newer read (or NM's departure) came meanwhile
            if not self._missed:
                break
        self._owner, self._paths = owner, devices
        self._manager = {'connectivity': int(props.get('Connectivity', 0)),
                         'state': int(props.get('State', 0))}
        self._publish(self._manager)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(lambda t: t.cancelled() or t.exception() and _log.warning(
            'NetworkManager: %r', t.exception()))

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return None
        bus = self.link.bus
        if msg.member == 'NameOwnerChanged' and msg.interface == 'org.freedesktop.DBus':
            name, _old, new = msg.body
            if name == NM:
                if new:
                    self._spawn(self._read(bus))
                else:
                    self._gone(f'{NM} left {self.link.where}')
            return None
        if self._reading is not None and msg.sender == self._reading:
            self._missed = True  # (_read reads again)
            return None
        if self._owner is None or msg.sender != self._owner:
            return None
        manager = self._manager
        if msg.path == NM_PATH:
            if msg.interface == PROPERTIES and msg.member == 'PropertiesChanged':
                interface, changed = msg.body[0], msg.body[1]
                if interface == NM:
                    if 'Connectivity' in changed:
                        manager['connectivity'] = int(changed['Connectivity'].value)
                    if 'State' in changed:
                        manager['state'] = int(changed['State'].value)
            elif msg.interface == NM and msg.member == 'StateChanged':
                manager['state'] = int(msg.body[0])
            elif msg.interface == NM and msg.member == 'DeviceAdded':
                self._spawn(self._add_device(bus, msg.body[0], self._generation))
                return None
            elif msg.interface == NM and msg.member == 'DeviceRemoved':
                self._paths.pop(msg.body[0], None)
            else:
                return None
        elif msg.path in self._paths:
            device = self._paths[msg.path]
            if msg.interface == PROPERTIES and msg.member == 'PropertiesChanged':
                if msg.body[0] != NM_DEVICE:
                    return None
                changed = msg.body[1]
                if 'State' in changed:
                    device['state'] = int(changed['State'].value)
                if 'Interface' in changed:
                    device['interface'] = changed['Interface'].value
            elif msg.interface == NM_DEVICE and msg.member == 'StateChanged':
                device['state'] = int(msg.body[0])
            else:
                return None
        else:
            return None
        self._publish(manager)
        return None

    async def _add_device(self, bus: Any, path: str, generation: int) -> None:
        try:
            device = await self._read_device(bus, path)
        except Exception as exc:
            _log.debug('NetworkManager: cannot read device %s: %r', path, exc)
            return
        if generation == self._generation and self._owner is not None:
            self._paths[path] = device
            self._publish(self._manager)
