"""Log through rclpy: each Python log record goes to the rcutils logger of its head's node.

When the application runs ROS and the program configured no logging of its own,
``Application.run()`` installs one :class:`RosLogHandler` on the root logger of every process
of the application (the main process and each head process), instead of Python's
``basicConfig``. Then a record is written where a ROS developer looks for it:

- a record of a head's logger (``polycephaly_ros.<head>``, ``head.logger``) goes to that head's
  node logger (``<namespace>.<head>``), a child logger ``polycephaly_ros.<head>.x`` to its
  child ``<namespace>.<head>.x``; any other record (the framework's ``polycephaly_ros.supervisor``,
  a library's logger) to a child of the process's own head (``<namespace>.<main>.supervisor``);
- rcutils writes it on the console in its format (what ``ros2 launch`` shows,
  ``RCUTILS_CONSOLE_OUTPUT_FORMAT``), in the ROS log file, and on ``/rosout`` while the node
  exists, with the record's own function, file and line;
- its level is rcutils's: ``--ros-args --log-level debug`` (every head) or ``--log-level
  <namespace>.<head>:=debug`` (one head) in the application's ``ros_args``; Python's logger
  levels follow when a context starts and when a node is made, so a record below the level
  costs no formatting.

A program that configures logging itself (``logging.basicConfig``, its own handlers) keeps
it: process heads' records then go to the main process's handlers (runtime._ToMain).

Threading contract: emit() runs in whichever thread logs; rcutils logging is serialised by
rclpy; attach() and detach() (called by ros.host when it makes and destroys a node) may run in
any thread.
"""

from __future__ import annotations

import logging
import threading

#: Python's levels as rcutils severities (DEBUG 10 … FATAL 50: the same numbers).
_SEVERITIES = (50, 40, 30, 20, 10)
_PREFIX = 'polycephaly_ros.'
_installed: RosLogHandler | None = None


def node_logger_name(namespace: str, name: str) -> str:
    """Return the logger name rcl gives a node named name in namespace."""
    return '.'.join(part for part in [*namespace.strip('/').split('/'), name] if part)


def severity(level: int) -> int:
    """Return the rcutils severity of a Python level (a custom level rounds down)."""
    return next((s for s in _SEVERITIES if level >= s), 10)


class RosLogHandler(logging.Handler):
    """Write records through rcutils under the node logger of the head that wrote them."""

    def __init__(self, namespace: str, home: str) -> None:
        super().__init__()
        self.namespace = namespace
        self.home = home  # the head whose process this is: records of no head go under it
        self.setFormatter(logging.Formatter('%(message)s'))
        self._heads: dict[str, str] = {}  # head name -> its node's logger name, while it exists
        self._children: set[tuple[str, str]] = set()  # subloggers registered for /rosout
        self._lock = threading.Lock()
        from rclpy.impl.implementation_singleton import rclpy_implementation

        self._rclpy = rclpy_implementation

    def attach(self, head: str, logger_name: str) -> None:
        """Send the head's records to its node's logger (and /rosout) from now on."""
        with self._lock:
            self._heads[head] = logger_name
        level = self._rclpy.rclpy_logging_get_logger_effective_level(logger_name)
        if level != self._rclpy.rclpy_logging_get_logger_effective_level(''):
            logging.getLogger(_PREFIX + head).setLevel(level)

    def detach(self, logger_name: str) -> None:
        """Stop publishing records on /rosout under logger_name: its node is about to go."""
        with self._lock:
            for head in [h for h, name in self._heads.items() if name == logger_name]:
                del self._heads[head]
            gone = {c for c in self._children if c[0] == logger_name}
            self._children -= gone
        for parent, child in gone:
            try:
                self._rclpy.rclpy_logging_rosout_remove_sublogger(parent, child)
            except Exception:  # (rosout already finished with its context)
                pass

    def follow_levels(self) -> None:
        """Set Python's root level to rcutils's default level (once rcl read --log-level)."""
        logging.getLogger().setLevel(self._rclpy.rclpy_logging_get_logger_effective_level(''))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = self._logger_of(record.name)
            self._rclpy.rclpy_logging_rcutils_log(
                severity(record.levelno), name, self.format(record), record.funcName or '',
                record.pathname or '', record.lineno or 0)
        except Exception:
            self.handleError(record)

    def _logger_of(self, python_name: str) -> str:
        """Return the rcutils logger name for a Python logger's records."""
        short = python_name[len(_PREFIX):] if python_name.startswith(_PREFIX) else python_name
        head, _, rest = short.partition('.')
        with self._lock:
            if head not in self._heads and head != self.home:
                head, rest = self.home, short
            parent = self._heads.get(head)
            if parent is None:  # no node (yet, or any more): console and log file only
                parent = node_logger_name(self.namespace, head)
            elif rest and (parent, rest) not in self._children:
                if self._rclpy.rclpy_logging_rosout_add_sublogger(parent, rest):
                    self._children.add((parent, rest))
        return f'{parent}.{rest}' if rest else parent


def install(namespace: str, home: str) -> RosLogHandler:
    """Make a RosLogHandler this process's only root handler; return it."""
    global _installed
    handler = _installed = RosLogHandler(namespace, home)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    return handler


def installed() -> RosLogHandler | None:
    """Return the handler install() made in this process, if any."""
    return _installed


def uninstall() -> None:
    """Give the root logger back to Python (the application's run is over)."""
    global _installed
    root = logging.getLogger()
    if _installed in root.handlers:
        root.removeHandler(_installed)
    _installed = None

