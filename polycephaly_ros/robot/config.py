"""The robot composition's settings: defaults that run on any machine, config/robot.yaml on top.

The file is also a ROS 2 parameters file: its top-level keys are node names (``service`` and
``touchscreen``, the main heads of the two applications, plus ``robot`` for what both share),
each holding ``ros__parameters``. rcl accepts it with ``--params-file``, and each main head
declares its section (and ``robot.*``) as parameters of its node, so ``ros2 param list
/service`` shows every setting under its dotted name (``heads.updates.dry_run``, ...).

For rcl's sake the file never holds an empty list, a null or a list of maps; named entries
(``heads.network.hosts``, ``heads.updates.actions``) are maps keyed by name instead.

Loading is strict: an unknown key or a value of the wrong type is a
:class:`~polycephaly_ros.errors.ConfigurationError` naming its dotted path.
"""

from __future__ import annotations

import copy
import os
import re
import socket
import tempfile
from typing import Any, Iterable, Iterator

import yaml

from ..errors import ConfigurationError

#: Names of the main heads (they are also the ROS node names of the two applications).
SERVICE = 'service'
TOUCHSCREEN = 'touchscreen'
SECTIONS = ('robot', SERVICE, TOUCHSCREEN)
#: touchscreen.transport's values (fifo is none: a FIFO pair's peer is a shell script).
TRANSPORTS = ('uds', 'ros', 'dbus', 'mqueue', 'serial')
DAYS = ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')

_APPLICATION = {
    'queue_size': 100,          # envelopes each head's inbox holds
    'queue_type': 'fifo',       # fifo or priority
    'frequency': 20.0,          # runs of the main head's life() per second
    'threads_timeout': 10.0,    # s a head gets to stop before it is terminated
    'send_timeout': 2.0,        # s a send waits for room in a full inbox
    'ros': 'auto',              # auto (rclpy if importable), on, off
    'force_stop': False,        # a second SIGINT/SIGTERM kills the heads at once
}

HOST_TEMPLATE = {
    'host': '127.0.0.1',
    'port': 22,
    'require_open': False,      # False: a refused connection still proves the host answers
}

ACTION_TEMPLATE = {
    'command': ['true'],
    'description': '',
    'pending': False,           # pending from the start (else only once scheduled)
}

DEFAULTS: dict[str, dict[str, Any]] = {
    'robot': {
        'namespace': '',            # ROS namespace of both applications
        'socket_path': '',          # '' = $XDG_RUNTIME_DIR/polycephaly/robot.sock or /tmp/...
        'socket_mode': '0600',      # permissions of the socket file (octal)
        'socket_group': '',         # group owning the socket file ('' = the user's)
        'restart_service': True,    # the composition restarts a service that died
        'restart_delay': 1.0,       # s before that restart
        'stop_timeout': 15.0,       # s the composition waits after SIGTERM before SIGKILL
    },
    SERVICE: {
        'application': dict(_APPLICATION),
        'uds': {
            'enabled': True,        # serve local clients on robot.socket_path
            'head': 'uds_server',   # name of the route head
            'max_frame': 1048576,   # bytes
        },
        'mqtt': {
            'enabled': False,       # join an MQTT broker: remote monitoring and management
            'head': 'mqtt',         # name of the route head
            'host': '127.0.0.1',
            'port': 1883,           # 8883 is usual with TLS
            'robot_id': '',         # the robot's id on the broker ('' = the host name)
            'prefix': 'polycephaly',
            'protocol': 5,          # 5, or 3 for MQTT 3.1.1
            'qos': 1,
            'keepalive': 30,        # s
            'session_expiry': 3600,  # s the broker keeps what arrives while the robot is away
            'outbox': 10000,        # envelopes waiting for the broker
            'outbox_file': '',      # '' = in memory; a path keeps them across restarts
            'username': '',         # '' = no authentication
            'password_file': '',    # its first line is the password
            'ca_file': '',          # TLS when set: the broker's CA ...
            'cert_file': '',        # ... and this client's certificate and key, if the
            'key_file': '',         # broker asks for one
            'status_period': 10.0,  # s between retained status and diagnostics (0 = never)
        },
        'console': {
            'enabled': True,        # the mobile web console, paired by the touchscreen's QR code
            'head': 'console',      # name of its head
            'host': '127.0.0.1',    # the address it listens on (the robot's, for phones)
            'port': 8765,           # 0 = any free port (the QR code says which)
            'public_url': '',       # what the QR code points at ('' = http(s)://host:port)
            'code_ttl': 300.0,      # s a pairing code lives (used once)
            'code_attempts': 5,     # wrong codes a client may try per minute
            'state_dir': '',        # paired devices (hashed tokens); '' = per user and namespace
            'tls': 'none',          # none, self_signed (made once in state_dir) or files
            'cert_file': '',        # tls files: certificate and key
            'key_file': '',
            'status_period': 1.0,   # s between live status updates to open pages
        },
        'routes': {                 # more routes to the service, each a route head (off)
            'dbus': {
                'enabled': False,   # own bus_name on the bus; its method Send carries envelopes
                'head': 'dbus',     # name of the route head
                'bus': 'session',   # session, system or an address (unix:path=...)
                'bus_name': 'io.polycephaly.Robot',
            },
            'serial': {
                'enabled': False,   # a peer (a microcontroller, another computer) on a line
                'head': 'serial',   # name of the route head
                'path': '',         # the device (required when enabled): /dev/serial/by-id/...
                'baudrate': 115200,
                'framing': 'json',  # json (a line each) or cobs (COBS + CRC-32: noisy lines)
            },
            'mqueue': {
                'enabled': False,   # POSIX message queues (/dev/mqueue)
                'head': 'mqueue',   # name of the route head
                'queue': '',        # ours; '' = /polycephaly.<uid>.<namespace>.service
                'peer_queue': '',   # where replies go; '' = the touchscreen's queue
            },
            'fifo': {
                'enabled': False,   # named pipes in and out, for shell scripts (one peer)
                'head': 'fifo',     # name of the route head
                'directory': '',    # where in and out are made; '' = beside the socket (fifo/)
            },
        },
        'heads': {
            'network': {
                'enabled': True,
                'mode': 'process',
                'frequency': 1.0,           # probes per second
                'restart': 'on_failure',
                'probe_timeout': 0.5,       # s per host
                'interfaces': ['*'],        # fnmatch patterns of the interfaces watched
                'require_default_route': False,
                'require': 'any',           # link up when any / all hosts answer
                'hosts': {'loopback': dict(HOST_TEMPLATE)},
                'networkmanager': True,     # follow NetworkManager's signals when it is there
                'networkmanager_bus': 'system',     # system, session or an address
                'networkmanager_require': 'full',   # connectivity for link up: full, limited,
                                                    # portal or none
            },
            'updates': {
                'enabled': True,
                'mode': 'process',
                'frequency': 1.0,           # decisions per second
                'restart': 'on_failure',
                'dry_run': True,            # log what would run; run nothing
                'window': {'start': '02:00', 'end': '05:00', 'days': list(DAYS)},
                'require_idle': True,       # run only while the robot reports idle
                'assume_idle': False,       # idle until told otherwise
                'idle_max_age': 300.0,      # s an idle report stays valid
                'command_timeout': 1800.0,  # s
                'history': 200,             # decisions kept for answers
                'logind': {                 # systemd-logind over D-Bus (on a robot: enabled)
                    'enabled': False,       # hold an inhibitor lock while busy; reboots via
                    'bus': 'system',        # ScheduleShutdown (system, session or an address)
                    'timeout': 5.0,         # s per call
                    'what': 'shutdown:sleep',
                    'who': 'polycephaly',
                    'why': 'robot busy',
                    'inhibit_mode': 'block',    # block or delay
                    'reboot_actions': ['reboot'],   # actions done by ScheduleShutdown
                    'reboot_delay': 0.0,    # s from the decision to the reboot
                },
                'actions': {
                    'upgrade': {'command': ['apt-get', '-y', 'upgrade'],
                                'description': 'Install pending package upgrades',
                                'pending': False},
                    'reboot': {'command': ['systemctl', 'reboot'],
                               'description': 'Reboot (kernel, UEFI or GRUB update)',
                               'pending': False},
                },
            },
            'diagnostics': {
                'enabled': True,
                'mode': 'process',
                'rate': 1.0,                # DiagnosticArray messages per second
                'restart': 'on_failure',
                'topic': '/diagnostics',
                'hardware_id': '',          # '' = the host name
                'disks': ['/'],
                'warn': {'cpu': 90.0, 'memory': 90.0, 'disk': 90.0, 'temperature': 80.0},
                'error': {'cpu': 98.0, 'memory': 97.0, 'disk': 97.0, 'temperature': 95.0},
            },
        },
    },
    TOUCHSCREEN: {
        'application': dict(_APPLICATION, frequency=30.0),
        'transport': 'uds',             # how requests reach the service: uds, ros, dbus,
                                        # mqueue or serial (not fifo: its peer is a shell)
        'uds_head': 'uds_client',       # name of the route head (transport uds)
        'dbus_head': 'dbus_client',     # ... (transport dbus: calls service.routes.dbus)
        'mqueue_head': 'mqueue',        # ... (transport mqueue)
        'mqueue_queue': '',             # ours; '' = /polycephaly.<uid>.<namespace>.touchscreen
        'serial_head': 'serial',        # ... (transport serial)
        'serial_path': '',              # our end of the line to service.routes.serial.path
        'headless': 'auto',             # auto (no DISPLAY or no Tk), on, off
        'reply_timeout': 0.5,           # s to wait for each status/diagnostics answer
        'admin_timeout': 15.0,          # s to wait for an administrative action's answer
        'status_period': 0.5,           # s between status requests
        'diagnostics_period': 2.0,      # s between diagnostics requests
        'window': {'title': 'Polycephaly robot', 'width': 800, 'height': 480,
                   'fullscreen': False},
    },
}

#: Maps whose keys are names chosen by the user; each entry is checked against a template.
_FREE_MAPS = {
    (SERVICE, 'heads', 'network', 'hosts'): HOST_TEMPLATE,
    (SERVICE, 'heads', 'updates', 'actions'): ACTION_TEMPLATE,
}
_CHOICES = {
    ('queue_type',): ('fifo', 'priority'),
    ('ros',): ('auto', 'on', 'off'),
    ('mode',): ('thread', 'process'),
    ('restart',): ('never', 'on_failure', 'always'),
    ('require',): ('any', 'all'),
    ('transport',): TRANSPORTS,
    ('framing',): ('json', 'cobs'),
    ('headless',): ('auto', 'on', 'off'),
    ('tls',): ('none', 'self_signed', 'files'),
    ('inhibit_mode',): ('block', 'delay'),
    ('networkmanager_require',): ('full', 'limited', 'portal', 'none'),
}
_NAME = re.compile(r'[a-z][a-z0-9_]*')
_CLOCK = re.compile(r'([01]?\d|2[0-3]):([0-5]\d)')


def _dotted(path: Iterable[str]) -> str:
    return '.'.join(path)


def _coerce(path: tuple[str, ...], default: Any, value: Any) -> Any:
    """Return value checked (and widened) to the type of default, or raise."""
    where = _dotted(path)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ('true', 'false', 'on', 'off', 'yes', 'no'):
            return value.lower() in ('true', 'on', 'yes')
        raise ConfigurationError(f'{where} must be true or false, not {value!r}')
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigurationError(f'{where} must be a whole number, not {value!r}')
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigurationError(f'{where} must be a number, not {value!r}')
    if isinstance(default, str):
        if path[-1] == 'socket_mode' and isinstance(value, int) and not isinstance(value, bool):
            return f'{value:04o}'  # an unquoted 0600 is read by YAML as the octal number
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = str(value)
            choices = _CHOICES.get((path[-1],))
            if choices and value not in choices:
                raise ConfigurationError(f'{where} must be one of {", ".join(choices)}, '
                                         f'not {value!r}')
            return value
        raise ConfigurationError(f'{where} must be text, not {value!r}')
    if isinstance(default, list):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or any(
                isinstance(v, (dict, list, bool)) or v is None for v in value):
            raise ConfigurationError(f'{where} must be a non-empty list of text, not {value!r}')
        return [str(v) for v in value]
    raise ConfigurationError(f'{where}: unsupported setting type')  # pragma: no cover


def _merge(path: tuple[str, ...], default: dict, value: Any) -> dict:
    """Return default updated with value, checking every key and type."""
    if value is None:
        return copy.deepcopy(default)
    if not isinstance(value, dict):
        raise ConfigurationError(f'{_dotted(path) or "the file"} must be a map, not {value!r}')
    template = _FREE_MAPS.get(path)
    if template is not None:  # user-named entries replace the default ones
        out = {}
        for name, entry in value.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ConfigurationError(f'{_dotted(path)}: {name!r} is not a valid name '
                                         '(a letter, then letters, digits or _)')
            out[name] = _merge(path + (name,), template, entry)
        return out
    out = copy.deepcopy(default)
    for key, item in value.items():
        if key not in default:
            known = ', '.join(sorted(default))
            raise ConfigurationError(f'unknown setting {_dotted(path + (str(key),))} '
                                     f'(known here: {known})')
        if isinstance(default[key], dict):
            out[key] = _merge(path + (key,), default[key], item)
        else:
            out[key] = _coerce(path + (key,), default[key], item)
    return out


def _unwrap(raw: Any, source: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f'{source}: the top level must be a map')
    out = {}
    for section, body in raw.items():
        if section not in SECTIONS:
            raise ConfigurationError(f'{source}: unknown section {section!r} '
                                     f'(known: {", ".join(SECTIONS)})')
        if isinstance(body, dict) and set(body) == {'ros__parameters'}:
            body = body['ros__parameters']
        out[section] = body
    return out


def load(path: str | os.PathLike[str] | None = None,
         overrides: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Return the settings: DEFAULTS, then the YAML file at path (if any), then overrides.

    Each override is ``section.dotted.key=value`` with value read as YAML
    (``service.heads.updates.dry_run=false``).
    """
    config = copy.deepcopy(DEFAULTS)
    if path:
        try:
            with open(path, encoding='utf-8') as f:
                raw = yaml.safe_load(f)
        except OSError as exc:
            raise ConfigurationError(f'cannot read the configuration {path}: {exc}') from None
        except yaml.YAMLError as exc:
            raise ConfigurationError(f'{path} is not valid YAML: {exc}') from None
        config = merge(config, _unwrap(raw, os.fspath(path)))
    for override in overrides:
        config = merge(config, parse_override(override))
    return config


def merge(config: dict, update: dict) -> dict:
    """Return config with the sections in update merged in (checked)."""
    out = copy.deepcopy(config)
    for section, body in _unwrap(update, 'settings').items():
        out[section] = _merge((section,), out[section], body)
    return out


def parse_override(text: str) -> dict:
    """Turn ``a.b.c=value`` into ``{'a': {'b': {'c': value}}}`` (value read as YAML)."""
    key, sep, value = text.partition('=')
    if not sep or not key.strip():
        raise ConfigurationError(f'a setting is given as section.key=value, not {text!r}')
    try:
        parsed = yaml.safe_load(value) if value.strip() else ''
    except yaml.YAMLError as exc:
        raise ConfigurationError(f'{key}: cannot read {value!r}: {exc}') from None
    tree: Any = parsed
    for part in reversed(key.strip().split('.')):
        tree = {part: tree}
    return tree


# -- derived values --------------------------------------------------------------------------
def socket_path(config: dict) -> str:
    """Return the Unix socket path of the service (robot.socket_path, or a per-user default).

    The default is per user and per namespace, so two robots on one machine never share it:
    ``$XDG_RUNTIME_DIR/polycephaly/<namespace>/robot.sock``, or without XDG_RUNTIME_DIR
    ``<temp dir>/polycephaly-<uid>/<namespace>/robot.sock`` (the server checks the directory
    is this user's and nobody else's).
    """
    path = config['robot']['socket_path']
    if path:
        return os.path.expanduser(path)
    runtime = os.environ.get('XDG_RUNTIME_DIR')
    if runtime and os.path.isdir(runtime):
        base = os.path.join(runtime, 'polycephaly')
    else:
        base = os.path.join(tempfile.gettempdir(), f'polycephaly-{os.getuid()}')
    namespace = config['robot']['namespace'].strip('/').replace('/', '.') or 'root'
    return os.path.join(base, namespace, 'robot.sock')


def socket_mode(config: dict) -> int:
    """Return robot.socket_mode as permission bits."""
    text = config['robot']['socket_mode']
    try:
        mode = int(text, 8)
    except ValueError:
        raise ConfigurationError(f'robot.socket_mode must be octal digits, not {text!r}') from None
    if not 0 <= mode <= 0o777:
        raise ConfigurationError(f'robot.socket_mode must be within 0000..0777, not {text!r}')
    return mode


def mqueue_names(config: dict) -> tuple[str, str]:
    """Return the POSIX queue names (the service's, the touchscreen's).

    service.routes.mqueue.queue and touchscreen.mqueue_queue, or per user and namespace
    ``/polycephaly.<uid>.<namespace>.service`` and ``....touchscreen`` (queues are
    machine-wide, so two users or two robots on one machine never share one).
    """
    namespace = config['robot']['namespace'].strip('/').replace('/', '.') or 'root'
    base = f'/polycephaly.{os.getuid()}.{namespace}'
    return (config[SERVICE]['routes']['mqueue']['queue'] or f'{base}.service',
            config[TOUCHSCREEN]['mqueue_queue'] or f'{base}.touchscreen')


def fifo_directory(config: dict) -> str:
    """Return service.routes.fifo.directory, or ``fifo`` beside the service's socket."""
    directory = config[SERVICE]['routes']['fifo']['directory']
    if directory:
        return os.path.expanduser(directory)
    return os.path.join(os.path.dirname(os.path.abspath(socket_path(config))), 'fifo')


def mqtt_id(config: dict) -> str:
    """Return the robot's id on the MQTT broker: service.mqtt.robot_id, or the host name."""
    return config[SERVICE]['mqtt']['robot_id'] or socket.gethostname().split('.')[0]


def parse_clock(text: str, where: str) -> int:
    """Return minutes after midnight for HH:MM."""
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ConfigurationError(f'{where} must be a time of day HH:MM, not {text!r}')
    return int(match[1]) * 60 + int(match[2])


def use_ros(setting: str) -> bool | None:
    """Map application.ros (auto/on/off) to Application(ros=...)."""
    return {'auto': None, 'on': True, 'off': False}[setting]


def application_options(section: dict, namespace: str) -> dict:
    """Return the Application keyword arguments of an application section."""
    app = section['application']
    return {
        'queue_size': app['queue_size'], 'queue_type': app['queue_type'],
        'frequency': app['frequency'], 'threads_timeout': app['threads_timeout'],
        'send_timeout': app['send_timeout'], 'force_stop': app['force_stop'],
        'ros': use_ros(app['ros']), 'namespace': namespace,
    }


def flatten(tree: dict, prefix: str = '') -> Iterator[tuple[str, Any]]:
    """Yield (dotted name, value) for every leaf of tree."""
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            yield from flatten(value, name + '.')
        else:
            yield name, value


def parameters(config: dict, section: str) -> list[tuple[str, Any]]:
    """Return the ROS parameters of a main head: its section and robot.*, dotted names."""
    return [*flatten(config[section]), *flatten(config['robot'], 'robot.')]


def declare_parameters(node: Any, config: dict, section: str) -> list:
    """Declare a section's settings (and robot.*) as read-only parameters of node."""
    from rcl_interfaces.msg import ParameterDescriptor

    return node.declare_parameters('', [  # one descriptor each: rclpy fills in its type
        (name, value, ParameterDescriptor(read_only=True, description='config/robot.yaml'))
        for name, value in parameters(config, section)])


def default_file() -> str | None:
    """Return the installed config/robot.yaml, or None when the package is not installed."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = os.path.join(get_package_share_directory('polycephaly_ros'), 'config', 'robot.yaml')
    except Exception:  # noqa: BLE001 - not installed through colcon
        return None
    return path if os.path.isfile(path) else None
