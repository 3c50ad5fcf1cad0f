"""polycephaly-remote: send one request to a robot's system service over MQTT and print the reply.

    polycephaly-remote --broker HOST[:PORT] --robot ID SUBJECT [BODY...]

``BODY`` is one JSON value (``'{"head": "updates"}'``) or ``key=value`` pairs, each value read
as JSON when it parses and as text otherwise (``head=updates``). The request goes to
``<prefix>/<robot>/<head>/inbox`` (``--head service`` by default) with this client's own inbox
as its MQTT 5 response topic; the reply's body is printed as indented JSON, or the whole reply
envelope as one line with ``--json``. Exit status: 0 for a reply, 1 for an ``error`` reply or
none within ``--timeout`` seconds, 2 for bad arguments or a broker that cannot be reached.

Broker, robot id, prefix, TLS and credentials default to ``service.mqtt`` of ``--config``
(``config/robot.yaml``), so on the robot itself ``polycephaly-remote status`` is enough.
Built on :class:`polycephaly_ros.routes.mqtt.MqttTransport` alone: no application, no ROS.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any, Sequence

import orjson

from ..envelope import new_id
from ..errors import ConfigurationError, PolycephalyError
from ..routes.mqtt import MqttTransport, Outbox
from ..routes.mqtt.transport import read_password
from . import config as cfg

#: The sender name of the requests (a robot has no head of that name).
SENDER = 'remote'


def parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    p = argparse.ArgumentParser(prog='polycephaly-remote', description=(
        'Send one request to a robot over MQTT and print the reply (subjects: status, '
        'diagnostics, network, updates, heads, schedule, unschedule, robot_idle, start_head, '
        'stop_head, restart_head).'))
    p.add_argument('subject', help='what to ask, e.g. status')
    p.add_argument('body', nargs='*', help='a JSON value, or key=value pairs')
    p.add_argument('--config', help='config/robot.yaml whose service.mqtt gives the defaults')
    p.add_argument('--broker', help='HOST[:PORT] of the broker (default: the config\'s)')
    p.add_argument('--robot', help='the robot\'s id on the broker (default: the config\'s)')
    p.add_argument('--head', default=cfg.SERVICE, help='the head asked (default: service)')
    p.add_argument('--prefix', help='topic prefix (default: the config\'s, polycephaly)')
    p.add_argument('--protocol', type=int, choices=(3, 5), help='MQTT version (default: 5)')
    p.add_argument('--ca-file', help='TLS: the broker\'s CA (turns TLS on)')
    p.add_argument('--cert-file', help='TLS: this client\'s certificate')
    p.add_argument('--key-file', help='TLS: this client\'s key')
    p.add_argument('--username', help='user name on the broker')
    p.add_argument('--password-file', help='a file whose first line is the password')
    p.add_argument('--timeout', type=float, default=5.0, help='s to wait (default: 5)')
    p.add_argument('--json', action='store_true', help='print the reply envelope as JSON')
    return p


def parse_body(words: Sequence[str]) -> Any:
    """Return the request body given on the command line (see the module doc)."""
    if not words:
        return None
    if len(words) == 1 and '=' not in words[0]:
        try:
            return orjson.loads(words[0])
        except orjson.JSONDecodeError:
            return words[0]
    body = {}
    for word in words:
        key, sep, value = word.partition('=')
        if not sep or not key:
            raise ConfigurationError(f'the body is one JSON value or key=value pairs, not '
                                     f'{word!r}')
        try:
            body[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            body[key] = value
    return body


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Return the transport's settings: the arguments over the config's service.mqtt."""
    config = cfg.load(args.config or cfg.default_file())
    mqtt = config[cfg.SERVICE]['mqtt']
    host, port = mqtt['host'], mqtt['port']
    if args.broker:
        host, _, given = args.broker.rpartition(':') if ':' in args.broker else (
            args.broker, '', '')
        try:
            port = int(given) if given else port
        except ValueError:
            raise ConfigurationError(f'--broker is HOST[:PORT], not {args.broker!r}') from None
    tls = {'ca_file': args.ca_file or mqtt['ca_file'] or None,
           'cert_file': args.cert_file or mqtt['cert_file'] or None,
           'key_file': args.key_file or mqtt['key_file'] or None}
    return {
        'host': host, 'port': port, 'prefix': args.prefix or mqtt['prefix'],
        'protocol': args.protocol or mqtt['protocol'],
        'tls': tls if tls['ca_file'] else None,
        'username': args.username or mqtt['username'] or None,
        'password': read_password(args.password_file or mqtt['password_file'] or None),
        'robot': args.robot or cfg.mqtt_id(config),
    }


def ask(args: argparse.Namespace) -> tuple[int, str]:
    """Send the request; return the exit status and what to print."""
    body = parse_body(args.body)
    given = settings(args)
    robot = given.pop('robot')
    me = f'remote-{new_id()[:8]}'
    replies: list[dict] = []
    arrived = threading.Event()
    transport = MqttTransport(lambda e: (replies.append(e), arrived.set()), robot=me,
                              persistent=False, presence=False, outbox=Outbox(16), **given)
    transport.start()
    try:
        if not transport.connected_event.wait(args.timeout):
            why = transport.refusal or 'no answer'
            return 2, f'cannot reach the broker at {given["host"]}:{given["port"]}: {why}'
        sent = transport.send({'sender': SENDER, 'recipient': args.head,
                               'subject': args.subject, 'body': body},
                              topic=transport.topics.inbox(args.head, robot))
        if not arrived.wait(args.timeout) or replies[0]['threadid'] != sent['threadid']:
            return 1, (f'no reply from {args.head!r} of robot {robot!r} within '
                       f'{args.timeout:g} s (is it online? see {given["prefix"]}/{robot}/status)')
    finally:
        transport.close()
    reply = replies[0]
    if args.json:
        return (1 if reply['subject'] == 'error' else 0), orjson.dumps(reply).decode()
    if reply['subject'] == 'error':
        return 1, f'error: {(reply.get("body") or {}).get("error", reply.get("body"))}'
    return 0, orjson.dumps(reply['body'], option=orjson.OPT_INDENT_2).decode()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = parser().parse_args(argv)
    try:
        status, text = ask(args)
    except (ConfigurationError, OSError) as exc:
        print(f'polycephaly-remote: {exc}', file=sys.stderr)
        return 2
    except PolycephalyError as exc:
        print(f'polycephaly-remote: {exc}', file=sys.stderr)
        return 1
    replied = status == 0 or (args.json and text.startswith('{'))
    print(text, file=sys.stdout if replied else sys.stderr)
    return status


def cli_main() -> None:
    """The console script."""
    sys.exit(main())
