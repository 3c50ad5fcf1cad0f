"""The seed's names: camelCase aliases and option names, applied here, plus its logger.

A program written for the original Polycephaly (2019) ports by changing its imports only::

    import polycephaly_ros as polycephaly
    from polycephaly_ros.compat import Logger, pf

Importing polycephaly_ros applies :func:`install`, which gives :class:`Application` and
:class:`Process` the seed's method names (``addProcess``, ``globalFrequency``, ``addFilter``,
``removeFilter``, ``waitForReply``: like the seed's, it returns ``{}`` when no reply came in
time, where ``wait_for_reply`` raises NoReply) and lets them take its option names (``queueSize``,
``queueType``, ``forceStop``, ``threadsTimeout`` for the application, ``boundShutdown`` for a
head). Everything else in the package uses the snake_case names only.
"""

from __future__ import annotations

import functools
import logging
from pprint import pformat as pf
from typing import Any, Callable

from .errors import NoReply
from .logs import LOG_FORMAT

__all__ = ['Logger', 'pf', 'install']

NOTICE = logging.INFO + 5
logging.addLevelName(NOTICE, 'NOTICE')

#: Seed method name -> ours, by class name.
METHODS = {
    'Application': {'addProcess': 'add_process', 'globalFrequency': 'global_frequency'},
    'Process': {'addFilter': 'add_filter', 'removeFilter': 'remove_filter'},
}
#: Seed option name -> ours, for Application() and add_process().
APPLICATION_OPTIONS = {'queueSize': 'queue_size', 'queueType': 'queue_type',
                       'forceStop': 'force_stop', 'threadsTimeout': 'threads_timeout'}
HEAD_OPTIONS = {'boundShutdown': 'bound_shutdown'}


class Logger(logging.LoggerAdapter):
    """A logbook-style logger (debug … notice … critical) over the logging module."""

    def __init__(self, name: str) -> None:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.DEBUG,
                                format=LOG_FORMAT)
        super().__init__(logging.getLogger(name), {})

    def notice(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log msg at NOTICE level, between INFO and WARNING."""
        self.log(NOTICE, msg, *args, **kwargs)


def _renaming(method: Callable[..., Any], names: dict[str, str]) -> Callable[..., Any]:
    """Return method taking the seed's keyword names too (an error if both are given)."""
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        for seed, ours in names.items():
            if seed in kwargs:
                if ours in kwargs:
                    raise TypeError(f'{method.__qualname__}() got both {seed!r} and {ours!r}')
                kwargs[ours] = kwargs.pop(seed)
        return method(self, *args, **kwargs)

    call.__polycephaly_seed_names__ = True  # type: ignore[attr-defined]
    return call


def wait_for_reply_or_empty(self: Any, message: dict, timeout: float = 10.0) -> dict:
    """Return the reply to message, or {} when none came in time (the seed's waitForReply)."""
    try:
        return self.wait_for_reply(message, timeout)
    except NoReply:
        return {}


def install() -> None:
    """Give Application and Process the seed's names; applying it twice changes nothing."""
    from .application import Application
    from .head import Process

    for name, names in (('__init__', APPLICATION_OPTIONS), ('add_process', HEAD_OPTIONS)):
        method = getattr(Application, name)
        if not getattr(method, '__polycephaly_seed_names__', False):
            setattr(Application, name, _renaming(method, names))
    for cls in (Application, Process):
        for seed, ours in METHODS[cls.__name__].items():
            setattr(cls, seed, getattr(cls, ours))
    Process.waitForReply = wait_for_reply_or_empty
