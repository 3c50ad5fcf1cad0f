"""A stand-in for NetworkManager on a test bus: python nm_standin.py ADDRESS [IFACE=STATE ...].

It owns ``org.freedesktop.NetworkManager`` on the bus at ADDRESS and implements exactly what
the network head uses (:mod:`polycephaly_ros.robot.networkmanager`), with dbus-fast:

* ``/org/freedesktop/NetworkManager``, interface ``org.freedesktop.NetworkManager``: properties
  ``Connectivity`` (u) and ``State`` (u), method ``GetDevices() -> ao``, signals
  ``StateChanged(u)``, ``DeviceAdded(o)``, ``DeviceRemoved(o)``;
* ``/org/freedesktop/NetworkManager/Devices/<n>``, interface
  ``org.freedesktop.NetworkManager.Device``: properties ``Interface`` (s) and ``State`` (u),
  signal ``StateChanged(uuu)``;
* ``org.freedesktop.DBus.Properties`` (``GetAll``, ``PropertiesChanged``) as dbus-fast gives it.

Its devices are the IFACE=STATE pairs (default ``eth0=100``); connectivity starts at 4 (full),
State at 70 (connected_global). It prints ``ready`` once it owns the name, then reads commands
on stdin, one a line, and answers each with ``ok`` once its signals are sent:
``connectivity N``, ``state N``, ``device IFACE N``, ``add IFACE N``, ``remove IFACE``.
End of input ends it.
"""

from __future__ import annotations

import asyncio
import sys

from dbus_fast import Message
from dbus_fast.aio import MessageBus
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

NM = 'org.freedesktop.NetworkManager'
PATH = '/org/freedesktop/NetworkManager'


class Device(ServiceInterface):
    """One device: Interface, State, StateChanged(uuu)."""

    def __init__(self, iface: str, state: int) -> None:
        super().__init__(f'{NM}.Device')
        self.iface, self.value = iface, state

    @dbus_property(access=PropertyAccess.READ, name='Interface')
    def interface(self) -> 's':  # noqa: F821
        return self.iface

    @dbus_property(access=PropertyAccess.READ, name='State')
    def state(self) -> 'u':  # noqa: F821
        return self.value

    @signal(name='StateChanged')
    def state_changed(self, new: int, old: int, reason: int) -> 'uuu':  # noqa: F821
        return [new, old, reason]

    def set(self, state: int) -> None:
        old, self.value = self.value, state
        self.emit_properties_changed({'State': state})
        self.state_changed(state, old, 0)


class Manager(ServiceInterface):
    """The manager: Connectivity, State, GetDevices, StateChanged, DeviceAdded/Removed."""

    def __init__(self) -> None:
        super().__init__(NM)
        self.connectivity_value, self.state_value = 4, 70
        self.devices: dict[str, tuple[str, Device]] = {}  # iface -> (path, device)

    @dbus_property(access=PropertyAccess.READ, name='Connectivity')
    def connectivity(self) -> 'u':  # noqa: F821
        return self.connectivity_value

    @dbus_property(access=PropertyAccess.READ, name='State')
    def state(self) -> 'u':  # noqa: F821
        return self.state_value

    @method(name='GetDevices')
    def get_devices(self) -> 'ao':  # noqa: F821
        return [path for path, _ in self.devices.values()]

    @signal(name='StateChanged')
    def state_changed(self, state: int) -> 'u':  # noqa: F821
        return state

    @signal(name='DeviceAdded')
    def device_added(self, path: str) -> 'o':  # noqa: F821
        return path

    @signal(name='DeviceRemoved')
    def device_removed(self, path: str) -> 'o':  # noqa: F821
        return path


async def main(address: str, pairs: list[str]) -> None:
    bus = await MessageBus(bus_address=address).connect()
    manager = Manager()
    count = 0

    def add(iface: str, state: int) -> str:
        nonlocal count
        count += 1
        path = f'{PATH}/Devices/{count}'
        device = Device(iface, state)
        bus.export(path, device)
        manager.devices[iface] = (path, device)
        return path

    for pair in pairs or ['eth0=100']:
        iface, state = pair.split('=')
        add(iface, int(state))
    bus.export(PATH, manager)
    await bus.request_name(NM)
    print('ready', flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        words = line.split()
        if not words:
            continue
        if words[0] == 'connectivity':
            manager.connectivity_value = int(words[1])
            manager.emit_properties_changed({'Connectivity': manager.connectivity_value})
        elif words[0] == 'state':
            manager.state_value = int(words[1])
            manager.emit_properties_changed({'State': manager.state_value})
            manager.state_changed(manager.state_value)
        elif words[0] == 'device':
            manager.devices[words[1]][1].set(int(words[2]))
        elif words[0] == 'add':
            manager.device_added(add(words[1], int(words[2])))
        elif words[0] == 'remove':
            path, _ = manager.devices.pop(words[1])
            bus.unexport(path)
            manager.device_removed(path)
        # A round trip to the daemon: the signals above are on the bus before the answer.
        await bus.call(Message(destination='org.freedesktop.DBus', path='/org/freedesktop/DBus',
                               interface='org.freedesktop.DBus.Peer', member='Ping'))
        print('ok', flush=True)
    bus.disconnect()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
