"""Own rclpy's lifetime inside one process: its context, its executor thread and its nodes."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import threading
from typing import Any, Iterator

from . import log

_log = logging.getLogger('polycephaly_ros.ros.host')
_live_hosts = 0
_started_hosts = 0
_forks_after_init = 0
_fork_hook_installed = False
#: Longest a DDS teardown step may take before the process ends (exit code 1, every thread's
#: traceback on stderr): Fast DDS can deadlock destroying entities with the GIL held
#: (eProsima/Fast-DDS#6502), and then nothing in Python can act.
TEARDOWN_TIMEOUT = 10.0
_bounded_lock = threading.Lock()
_bounded_count = 0


@contextlib.contextmanager
def bounded(timeout: float = TEARDOWN_TIMEOUT) -> Iterator[None]:
    """End the process if the body (a DDS teardown step) runs longer than timeout.

    faulthandler's watchdog is a C thread: it acts while a deadlocked thread holds the GIL.
    Nested and concurrent uses share it; each entry restarts its clock.
    """
    global _bounded_count
    with _bounded_lock:
        _bounded_count += 1
        faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        yield
    finally:
        with _bounded_lock:
            _bounded_count -= 1
            if _bounded_count == 0:
                faulthandler.cancel_dump_traceback_later()


def ros_available() -> bool:
    """Tell whether rclpy can be imported in this environment."""
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return False
    return True


def hosts_started() -> int:
    """Return how many rclpy contexts this process has started so far."""
    return _started_hosts


def forks_after_init() -> int:
    """Return how many times this process forked while an rclpy context was live (must be 0)."""
    return _forks_after_init


def _before_fork() -> None:
    global _forks_after_init
    if _live_hosts:
        _forks_after_init += 1
        _log.error('this process forks while rclpy runs in it: the child will not work')


def isolate_discovery() -> None:
    """Keep DDS discovery on this machine unless the environment already chose otherwise."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


class RclpyHost:
    """One rclpy context per process, spun by one executor thread, hosting the heads' nodes.

    With a discovery_server address the process's participant is that server's client
    (ros/discovery_server.py) instead of using simple discovery. args are rclpy.init's (its
    default: sys.argv): ``--ros-args --log-level …`` and the like.

    Threading contract: create_node() and destroy_node() may be called from any thread;
    node callbacks run in the executor thread (a head's inbox topics have none: the head's
    thread takes them, see ros.bridge.RosInbox); shutdown() is called once, by the owner.
    """

    def __init__(self, namespace: str = '', private_shared_memory: bool = True,
                 discovery_server: str | None = None, args: list[str] | None = None) -> None:
        global _live_hosts, _started_hosts, _fork_hook_installed
        self._private_shared_memory = private_shared_memory
        isolate_discovery()
        if discovery_server is not None:  # (read when the context's participant is made)
            os.environ['ROS_DISCOVERY_SERVER'] = discovery_server
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        if not _fork_hook_installed:
            os.register_at_fork(before=_before_fork)
            _fork_hook_installed = True
        self.namespace = namespace
        self.context = Context()
        rclpy.init(args=args, context=self.context,
                   signal_handler_options=SignalHandlerOptions.NO)
        if (handler := log.installed()) is not None:
            handler.follow_levels()  # (rcl has read --log-level)
        _live_hosts += 1
        _started_hosts += 1
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes: list[Any] = []
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._spin, name='rclpy-executor', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        while True:
            try:
                self.executor.spin()  # returns once the executor or the context shuts down
                return
            except ExternalShutdownException:
                return
            except Exception:  # one callback's bug must not stop every other callback here
                if self._closing or not self.context.ok():
                    return  # (teardown: the context went while a wait was being set up)
                _log.exception('a ROS callback raised; the executor goes on serving the others')

    def create_node(self, name: str, services: bool = True, managed: bool = False) -> Any:
        """Create a node named name in the host's namespace and spin it.

        Without services the node offers no parameter services and no type description
        service (fewer endpoints for every other participant to discover). A managed node is
        a lifecycle node (ros/lifecycle.py).
        """
        import rclpy
        from rclpy.parameter import Parameter

        options = dict(namespace=self.namespace, context=self.context,
                       start_parameter_services=services,
                       parameter_overrides=None if services else [
                           Parameter('start_type_description_service', value=False)])
        if managed:
            from .lifecycle import ManagedNode

            node = ManagedNode(name, **options)
        else:
            node = rclpy.create_node(name, **options)
        with self._lock:
            self._nodes.append(node)
        if (handler := log.installed()) is not None:
            handler.attach(name, node.get_logger().name)
        if self._private_shared_memory:  # the participant (and its segment) exists by now
            from . import shared_memory

            shared_memory.make_private()
            self._private_shared_memory = False
        self.executor.add_node(node)
        return node

    def destroy_node(self, node: Any) -> None:
        """Stop spinning node and destroy it."""
        with self._lock:
            if node not in self._nodes:
                return
            self._nodes.remove(node)
        self._detach_logger(node)
        self.executor.remove_node(node)
        with bounded():
            node.destroy_node()

    @staticmethod
    def _detach_logger(node: Any) -> None:
        if (handler := log.installed()) is not None:
            handler.detach(node.get_logger().name)

    def shutdown(self, timeout: float = TEARDOWN_TIMEOUT) -> None:
        """Destroy every node and the context; exit the process if DDS hangs beyond timeout."""
        global _live_hosts
        self._closing = True
        try:
            with bounded(timeout):
                # The executor's shutdown() wakes its spin but does not wait for it to return:
                # join the thread before the context goes, or its next wait set meets a dead
                # context.
                self.executor.shutdown(timeout_sec=timeout / 2)
                self._thread.join(timeout / 2)
                with self._lock:
                    nodes, self._nodes = self._nodes, []
                for node in nodes:
                    self._detach_logger(node)
                    node.destroy_node()
                self.context.try_shutdown()
        finally:
            _live_hosts -= 1
