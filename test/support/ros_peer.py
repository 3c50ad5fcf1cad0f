"""A plain rclpy program that talks to polycephaly heads over their inbox topics.

It uses our message type (``polycephaly_ros.msg.Envelope``) and nothing else of
polycephaly_ros: it shows what any ROS node has to do to take part.

Run as ``python ros_peer.py --name NAME [--namespace NS] [--inbox typed|json]``. It subscribes
to its own inbox, ``polycephaly/NAME/inbox`` (typed), and prints every envelope received there
as one JSON line ``{"event": "received", ...fields..., "body": ..., "headers": {...}}`` on
stdout; with ``--inbox json`` it subscribes to ``polycephaly/NAME/inbox_json`` (String) only,
as a client that cannot build our message type, and prints ``{"event": "received",
...the envelope's headers...}``. It reads
commands, one JSON object a line, from stdin:

* ``{"cmd": "send", "to": HEAD, "mode": "typed", "envelope": {...}}`` publishes a typed
  Envelope to ``polycephaly/HEAD/inbox``; ``"fields": {...}`` sets raw message fields instead
  (e.g. an invalid ``body_json``).
* ``{"cmd": "send", "to": HEAD, "mode": "json", "envelope": {...}}`` publishes the envelope as
  JSON text on ``polycephaly/HEAD/inbox_json`` (``"text": "..."`` sends raw text instead).
* ``{"cmd": "burst", "to": HEAD, "count": N, "subject": S}`` publishes N typed envelopes with
  bodies 0..N-1 as fast as the reliable KEEP_ALL writer takes them, then prints
  ``{"event": "sent", "count": N}``.
* ``{"cmd": "ghosts", "to": HEAD, "count": N, "subject": S}`` publishes N typed envelopes, each
  from a different sender that does not exist (``ghost0``, ``ghost1``, ...; with
  ``"malformed": true`` their ``body_json`` is not JSON), then prints ``{"event": "sent"}``.
* ``{"cmd": "quit"}`` ends the program.

Each publish first waits (up to 20 s) for the topic's subscriber to be matched. It prints
``{"event": "ready"}`` once its inbox subscription exists, ``{"event": "published", ...}``
after each send and ``{"event": "error", "error": ...}`` when a command fails.

The module also holds :class:`PeerProcess`, the tests' handle on such a subprocess; importing
the module does not import rclpy.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str]) -> int:
    import argparse

    import rclpy
    from rclpy.event_handler import PublisherEventCallbacks
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from polycephaly_ros.msg import Envelope

    parser = argparse.ArgumentParser()
    parser.add_argument('--name', required=True)
    parser.add_argument('--namespace', default='')
    parser.add_argument('--inbox', choices=('typed', 'json'), default='typed')
    options = parser.parse_args(argv)
    assert os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE') == 'LOCALHOST', 'keep DDS on loopback'

    qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    rclpy.init(args=None)
    node = rclpy.create_node(f'peer_{options.name}', namespace=options.namespace)
    out_lock = threading.Lock()

    def emit(obj: dict) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(obj) + '\n')
            sys.stdout.flush()

    def on_inbox(msg: Envelope) -> None:
        record = {'event': 'received'}
        for field in ('messageid', 'threadid', 'threadindex', 'sender', 'recipient', 'subject',
                      'time', 'priority', 'route'):
            record[field] = getattr(msg, field)
        record['body'] = json.loads(msg.body_json) if msg.body_json else None
        record['headers'] = json.loads(msg.headers_json) if msg.headers_json else {}
        emit(record)

    def on_json_inbox(msg: String) -> None:
        emit({'event': 'received', **json.loads(msg.data)})

    if options.inbox == 'typed':
        node.create_subscription(Envelope, f'polycephaly/{options.name}/inbox', on_inbox, qos)
    else:
        node.create_subscription(String, f'polycephaly/{options.name}/inbox_json', on_json_inbox,
                                 qos)
    publishers: dict = {}

    def publisher(kind: type, topic: str):
        if topic not in publishers:
            matched = threading.Event()
            events = PublisherEventCallbacks(
                matched=lambda info: matched.set() if info.current_count else matched.clear())
            publishers[topic] = (node.create_publisher(kind, topic, qos, event_callbacks=events),
                                 matched)
        pub, matched = publishers[topic]
        deadline = time.monotonic() + 20.0
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f'no subscriber on {pub.topic_name}')
            matched.wait(0.05)
        return pub

    def publish(pub, msg) -> None:
        while True:
            try:
                pub.publish(msg)
                return
            except _rclpy.RCLError:  # KEEP_ALL history full: the reader lags; try again
                continue

    def typed(to: str, envelope: dict) -> Envelope:
        msg = Envelope()
        msg.messageid = envelope.get('messageid', str(uuid.uuid4()))
        msg.threadid = envelope.get('threadid', str(uuid.uuid4()))
        msg.threadindex = envelope.get('threadindex', 1)
        msg.sender = envelope.get('sender', options.name)
        msg.recipient = envelope.get('recipient', to)
        msg.subject = envelope.get('subject', '')
        msg.time = time.time()
        msg.body_json = json.dumps(envelope.get('body'))
        msg.headers_json = json.dumps(envelope.get('headers', {}))
        return msg

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    emit({'event': 'ready'})
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        try:
            cmd, to = command['cmd'], command.get('to')
            if cmd == 'quit':
                break
            if cmd == 'send' and command.get('mode', 'typed') == 'typed':
                if 'fields' in command:
                    msg = Envelope(**command['fields'])
                else:
                    msg = typed(to, command['envelope'])
                publish(publisher(Envelope, f'polycephaly/{to}/inbox'), msg)
                emit({'event': 'published', 'messageid': msg.messageid, 'threadid': msg.threadid})
            elif cmd == 'send':
                text = command.get('text')
                if text is None:
                    envelope = dict(command['envelope'])
                    envelope.setdefault('sender', options.name)
                    envelope.setdefault('recipient', to)
                    text = json.dumps(envelope)
                publish(publisher(String, f'polycephaly/{to}/inbox_json'), String(data=text))
                emit({'event': 'published'})
            elif cmd == 'ghosts':
                pub = publisher(Envelope, f'polycephaly/{to}/inbox')
                for i in range(command['count']):
                    msg = typed(to, {'subject': command.get('subject', 'status'),
                                     'sender': f'ghost{i}'})
                    if command.get('malformed'):
                        msg.body_json = '{not json'
                    publish(pub, msg)
                emit({'event': 'sent', 'count': command['count']})
            elif cmd == 'burst':
                pub = publisher(Envelope, f'polycephaly/{to}/inbox')
                thread = str(uuid.uuid4())
                for i in range(command['count']):
                    publish(pub, typed(to, {'subject': command.get('subject', 'item'), 'body': i,
                                            'threadid': thread}))
                emit({'event': 'sent', 'count': command['count']})
            else:
                raise ValueError(f'unknown command {cmd!r}')
        except Exception as exc:  # noqa: BLE001 - reported to the test
            emit({'event': 'error', 'error': f'{type(exc).__name__}: {exc}'})
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


class PeerProcess:
    """The tests' handle on a ros_peer.py subprocess: send commands, read its events."""

    def __init__(self, name: str, namespace: str = '', inbox: str = 'typed') -> None:
        self.name = name
        self.events: list[dict] = []
        self.lines: list[str] = []
        self._partial = ''
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'ros_peer.py'), '--name', name,
             '--namespace', namespace, '--inbox', inbox],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED='1', ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST'))
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.wait_for(lambda e: e['event'] == 'ready', timeout=20)

    def command(self, **command) -> None:
        """Send one command to the peer."""
        self.proc.stdin.write((json.dumps(command) + '\n').encode())
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout: float = 20.0, start: int = 0) -> dict:
        """Return the first event from index start on for which predicate holds; fail after timeout."""
        deadline = time.monotonic() + timeout
        checked = start
        while True:
            for event in self.events[checked:]:
                if predicate(event):
                    return event
            checked = max(checked, len(self.events))
            remaining = deadline - time.monotonic()
            assert remaining > 0, f'peer {self.name}: no matching event within {timeout} s; ' \
                                  f'output:\n{"".join(self.lines)[-3000:]}'
            if self._selector.select(remaining):
                self._read()

    def poll(self) -> None:
        """Read what the peer printed so far, without waiting."""
        if self._selector.select(0):
            self._read()

    def received(self, predicate=lambda e: True, timeout: float = 20.0, start: int = 0) -> dict:
        """Return the first envelope received on the peer's inbox that satisfies predicate."""
        return self.wait_for(lambda e: e['event'] == 'received' and predicate(e), timeout, start)

    def _read(self) -> None:
        chunk = os.read(self.proc.stdout.fileno(), 1 << 16).decode(errors='replace')
        assert chunk, f'peer {self.name} ended; output:\n{"".join(self.lines)[-3000:]}'
        self._partial += chunk
        *complete, self._partial = self._partial.split('\n')
        for line in complete:
            self.lines.append(line + '\n')
            if line.startswith('{'):
                self.events.append(json.loads(line))

    def close(self, timeout: float = 10.0) -> int:
        """Ask the peer to quit; kill it if it does not within timeout; return its exit code."""
        try:
            self.command(cmd='quit')
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()
        self._selector.close()
        return self.proc.returncode

    def __enter__(self) -> 'PeerProcess':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
