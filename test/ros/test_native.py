"""The private rclpy/rcl calls and the native callback (src/rcl_notify.c), tested on their own."""

from __future__ import annotations

import ctypes
import os
import select

from std_msgs.msg import String

from plain_ros import plain_node
from polycephaly_ros.ros import native


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_the_native_callback_adds_the_number_of_events_to_the_eventfd():
    _, address = native.load_callback()
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t)(address)
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        callback(fd, 5)
        callback(fd, 0)  # rcl says 0 for "something happened": counted as one
        assert os.eventfd_read(fd) == 6
    finally:
        os.close(fd)


def test_rcl_wakes_the_eventfd_for_each_message_and_take_message_takes_them():
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    with plain_node('native_test') as (node, _executor):
        sub = node.create_subscription(String, 'native_test', lambda msg: None, 10)
        pub = node.create_publisher(String, 'native_test', 10)
        try:
            native.notify_on_message(sub, fd)
            assert native.take_message(sub) is None
            pub.publish(String(data='one'))
            pub.publish(String(data='two'))
            assert _readable(fd, 10.0), 'rcl never called the native callback'
            taken = []
            while len(taken) < 2:
                msg = native.take_message(sub)
                if msg is None:  # the second may still be on its way
                    assert _readable(fd, 10.0)
                    os.eventfd_read(fd)
                    continue
                taken.append(msg.data)
            assert taken == ['one', 'two']
            native.notify_on_message(sub, None)  # from now on rcl does not call back
            while _readable(fd, 0):
                os.eventfd_read(fd)
            pub.publish(String(data='three'))
            assert not _readable(fd, 0.5)
            assert native.take_message(sub).data == 'three'  # the message still arrived
        finally:
            node.destroy_subscription(sub)
            node.destroy_publisher(pub)
    os.close(fd)


def test_the_incompatible_qos_event_can_be_taken_and_destroyed():
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    fd = os.eventfd(0, os.EFD_NONBLOCK)
    with plain_node('native_qos_test') as (node, _executor):
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        sub = node.create_subscription(String, 'native_qos', lambda msg: None, reliable)
        event = native.incompatible_qos_event(sub)
        native.notify_on_event(event, fd)
        pub = node.create_publisher(String, 'native_qos', best_effort)  # offers less than asked
        try:
            assert _readable(fd, 10.0), 'the incompatible QoS event never fired'
            info = native.take_event(event)
            assert info.total_count >= 1
        finally:
            native.notify_on_event(event, None)
            native.destroy_event(event)
            node.destroy_publisher(pub)
            node.destroy_subscription(sub)
    os.close(fd)


def test_rcl_error_is_the_class_rclpy_raises():
    assert issubclass(native.rcl_error(), Exception)
    assert native.rcl_error().__name__ == 'RCLError'
