"""Where log records go: through rclpy, to the program's handlers, or shown on stderr.

``Application.run()`` decides once, with :func:`choose`: when the program configured no
logging, with ROS every process of the application writes through rclpy (ros/log.py), and
without ROS run() shows INFO and above on stderr (:data:`LOG_FORMAT`). A program that
configured logging keeps it: each head process then puts its records on the application's
SimpleQueue (:func:`in_head_process`), and a listener in the application's process
(:class:`Relay`) hands them to the same handlers as the process's own records.

Threading contract: the relay's records are handled in its listener thread; everything else
runs in the thread that calls it (run()'s, a head process's main thread).
"""

from __future__ import annotations

import logging
import logging.handlers
from typing import Any

#: The format run() sets up when the program configured no logging and runs without ROS.
LOG_FORMAT = '[%(asctime)s] %(levelname)s: %(name)s: %(message)s'


def choose(use_ros: bool, namespace: str, main: str) -> bool:
    """Set up this process's logging for an application; tell whether it goes through rclpy."""
    root = logging.getLogger()
    if root.handlers:
        return False
    if not use_ros:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        return False
    from .ros import log

    log.install(namespace, main)
    root.setLevel(logging.INFO)  # (rcutils's level once rclpy has read --log-level)
    return True


def release(through_rclpy: bool) -> None:
    """Undo what choose() installed for rclpy (the application's run is over)."""
    if through_rclpy:
        from .ros import log

        log.uninstall()


def in_head_process(settings: Any, name: str) -> None:
    """Send a head process's records where the application's go (settings: runtime.Settings)."""
    root = logging.getLogger()
    if settings.ros_logging:  # through this process's rclpy, as the main process does
        from .ros import log

        log.install(settings.namespace, name)
    else:  # to the application's process
        root.handlers[:] = [_ToMain(settings.log_queue)]
    root.setLevel(settings.log_level)


class Relay(logging.handlers.QueueListener):
    """Handle the records head processes put on queue (a SimpleQueue) as this process's own."""

    def __init__(self, queue: Any) -> None:
        super().__init__(queue, _HandledHere())

    def dequeue(self, block: bool) -> logging.LogRecord:
        return self.queue.get()

    def enqueue_sentinel(self) -> None:
        self.queue.put(self._sentinel)


class _HandledHere(logging.Handler):
    """Handle a record from a head process as if it were logged in this process."""

    def handle(self, record: logging.LogRecord) -> bool:
        logging.getLogger(record.name).handle(record)
        return True


class _ToMain(logging.handlers.QueueHandler):
    """Put each record on the application's SimpleQueue (a Relay there reads it)."""

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put(record)
