"""The built package: install tree, generated Envelope message, and the test-run isolation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isolation import DOMAIN_PORT_BASE, IS_SUBREAPER
from plain_ros import plain_node

PACKAGE = 'polycephaly_ros'


def test_install_tree():
    from ament_index_python.packages import get_package_prefix

    prefix = Path(get_package_prefix(PACKAGE))
    assert (prefix / 'share' / PACKAGE / 'package.xml').is_file()
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()
    assert (prefix / 'lib' / PACKAGE).is_dir()
    from polycephaly_ros.ros import native  # its native callback, built by colcon

    assert native.LIBRARY.is_file()


def _sample_fields() -> dict:
    return {
        'messageid': '9da03bcf-af3d-49ad-a9d4-17617c974de6',
        'threadid': '05cc7e85-f291-4c63-af34-6d47b8fc2594',
        'threadindex': 3,
        'sender': 'hello',
        'recipient': 'main',
        'subject': 'salutation',
        'time': 1700000000.25,
        'priority': -2,
        'route': 'ros',
        'body_json': '"Hello, World! \u00e9"',
        'headers_json': '{"x": 1}',
    }


def test_envelope_message_roundtrip_and_graph():
    import rclpy
    from rclpy.serialization import deserialize_message, serialize_message

    from polycephaly_ros.msg import Envelope

    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'

    fields = _sample_fields()
    msg = Envelope(**fields)
    back = deserialize_message(serialize_message(msg), Envelope)
    assert back == msg
    for name, value in fields.items():
        assert getattr(back, name) == value, name
    empty = Envelope()
    assert (empty.threadindex, empty.priority, empty.headers_json) == (0, 0, '')

    topic = '/polycephaly_test_envelope'
    with plain_node('polycephaly_test_package') as (node, executor):
        node.create_publisher(Envelope, topic, 10)
        seen = None
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            seen = dict(node.get_topic_names_and_types()).get(topic)
            if seen:
                break
            rclpy.spin_once(node, executor=executor, timeout_sec=0.1)
        assert seen == ['polycephaly_ros/msg/Envelope']


def test_ros_isolation_environment(ros_domain):
    assert os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE') == 'LOCALHOST'
    assert 'ROS_LOCALHOST_ONLY' not in os.environ
    assert os.environ.get('ROS_DOMAIN_ID') == str(ros_domain)
    assert 1 <= ros_domain <= 100
    # The reservation is held for the whole run: the id's port cannot be bound again.
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError):
            probe.bind(('127.0.0.1', DOMAIN_PORT_BASE + ros_domain))
    finally:
        probe.close()


def test_leftover_processes_passes_when_children_end(leftover_processes):
    proc = subprocess.Popen([sys.executable, '-S', '-c', 'pass'])
    proc.wait(timeout=30)
    leftover_processes(timeout=5.0)


@pytest.mark.skipif(not IS_SUBREAPER, reason='needs prctl(PR_SET_CHILD_SUBREAPER)')
def test_leftover_processes_catches_and_kills_orphans(leftover_processes):
    # The shell exits at once and leaves `sleep` orphaned; as subreaper, pytest adopts it.
    out = subprocess.run(['sh', '-c', 'sleep 60 >/dev/null 2>&1 & echo $!'],
                         check=True, capture_output=True, text=True, timeout=30)
    orphan = int(out.stdout.strip())
    with pytest.raises(pytest.fail.Exception, match=f'pid={orphan} name=.sleep.'):
        leftover_processes(timeout=0.5)
    with pytest.raises(ChildProcessError):  # killed and reaped by the check
        os.waitpid(orphan, os.WNOHANG)
