"""The diagnostics head: CPU, memory, disks and temperatures, on /diagnostics and as envelopes.

At ``rate`` samples per second (the head's frequency) it reads psutil, publishes a
``diagnostic_msgs/msg/DiagnosticArray`` on ``topic`` (``/diagnostics``, the topic ROS's
diagnostic tools read) when the application runs with ROS, sends the sample to the main head
(``diagnostics_sample``) and answers ``diagnostics`` with it, from any route.

Levels follow the ``warn`` and ``error`` thresholds (percent, and degrees Celsius for
temperatures); a machine without temperature sensors reports that, at level OK.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ..filters import message_filter
from .common import RobotHead

LEVELS = ('OK', 'WARN', 'ERROR', 'STALE')


def _level(value: float | None, warn: float, error: float) -> int:
    if value is None:
        return 0
    return 2 if value >= error else 1 if value >= warn else 0


def sample(settings: dict, hardware_id: str) -> dict[str, Any]:
    """Return one JSON-able sample of the machine's health, with a status per component."""
    import psutil

    warn, error = settings['warn'], settings['error']
    statuses = []

    def status(name: str, level: int, message: str, values: dict) -> None:
        statuses.append({'name': f'polycephaly: {name}', 'level': LEVELS[level],
                         'message': message, 'hardware_id': hardware_id,
                         'values': {k: str(v) for k, v in values.items()}})

    cpu = psutil.cpu_percent(interval=None)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    cpu_info = {'percent': cpu, 'count': psutil.cpu_count() or 0, 'load': load}
    status('cpu', _level(cpu, warn['cpu'], error['cpu']), f'{cpu:.0f} % busy',
           {'percent': cpu, 'count': cpu_info['count'], 'load': ' '.join(map(str, load))})

    vm = psutil.virtual_memory()
    memory = {'percent': vm.percent, 'total': vm.total, 'available': vm.available}
    status('memory', _level(vm.percent, warn['memory'], error['memory']),
           f'{vm.percent:.0f} % used', memory)

    disks = {}
    for path in settings['disks']:
        try:
            du = psutil.disk_usage(path)
        except OSError as exc:
            status(f'disk {path}', 2, f'cannot read: {exc}', {'path': path})
            continue
        disks[path] = {'percent': du.percent, 'total': du.total, 'free': du.free}
        status(f'disk {path}', _level(du.percent, warn['disk'], error['disk']),
               f'{du.percent:.0f} % used', dict(disks[path], path=path))

    temperatures: dict[str, list] = {}
    reader = getattr(psutil, 'sensors_temperatures', None)
    try:
        found = reader() if reader else {}
    except Exception:  # noqa: BLE001 - some kernels expose odd sensors
        found = {}
    hottest = None
    for chip, entries in (found or {}).items():
        temperatures[chip] = [{'label': e.label or chip, 'current': e.current,
                               'high': e.high, 'critical': e.critical} for e in entries]
        for e in entries:
            if e.current is not None and (hottest is None or e.current > hottest):
                hottest = e.current
    if temperatures:
        status('temperature', _level(hottest, warn['temperature'], error['temperature']),
               f'hottest {hottest:.0f} °C', {f'{c}/{t["label"]}': t['current']
                                             for c, ts in temperatures.items() for t in ts})
    else:
        status('temperature', 0, 'no temperature sensors on this machine', {})

    worst = max((LEVELS.index(s['level']) for s in statuses), default=0)
    return {'time': time.time(), 'hardware_id': hardware_id, 'level': LEVELS[worst],
            'cpu': cpu_info, 'memory': memory, 'disks': disks, 'temperatures': temperatures,
            'statuses': statuses}


def to_message(data: dict, stamp: Any = None) -> Any:
    """Return the DiagnosticArray of a sample."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    array = DiagnosticArray()
    if stamp is not None:
        array.header.stamp = stamp
    for s in data['statuses']:
        array.status.append(DiagnosticStatus(
            level=bytes([LEVELS.index(s['level'])]), name=s['name'], message=s['message'],
            hardware_id=s['hardware_id'],
            values=[KeyValue(key=k, value=v) for k, v in s['values'].items()]))
    return array


class DiagnosticsHead(RobotHead):
    """Sample and publish the machine's health; kwargs['settings'] is heads.diagnostics."""

    def birth(self) -> None:
        import psutil

        self.settings = self.kwargs['settings']
        self.notify = self.kwargs.get('notify', 'service')
        self.hardware_id = self.settings['hardware_id'] or socket.gethostname()
        psutil.cpu_percent(interval=None)  # the first reading is meaningless: prime it
        self.publisher = None
        self.published = 0
        if self.node is not None:
            from diagnostic_msgs.msg import DiagnosticArray

            self.publisher = self.node.create_publisher(DiagnosticArray,
                                                        self.settings['topic'], 10)
        else:
            self.logger.info('no ROS here: diagnostics are answered as envelopes only')
        self.latest: dict | None = None

    def life(self) -> None:
        self.latest = sample(self.settings, self.hardware_id)
        if self.publisher is not None:
            self.publisher.publish(to_message(self.latest, self.node.get_clock().now().to_msg()))
            self.published += 1
        self.tell(self.notify, 'diagnostics_sample', self.latest)
        self.mailman()

    @message_filter(route=None, subject='diagnostics')
    def answer(self, message: dict) -> None:
        """Answer with the latest sample (taking one if there is none yet)."""
        data = self.latest or sample(self.settings, self.hardware_id)
        self.respond(message, dict(data, published=self.published))
