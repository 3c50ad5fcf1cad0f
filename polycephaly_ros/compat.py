"""What a program ported from the original Polycephaly imports besides polycephaly_ros itself.

Port by changing imports only::

    import polycephaly_ros as polycephaly
    from polycephaly_ros.compat import Logger, pf

The seed's camelCase methods (addProcess, globalFrequency, addFilter, waitForReply, …) and
option names (queueSize, queueType, forceStop, threadsTimeout, boundShutdown) are aliases on
Application and Process themselves.
"""

from __future__ import annotations

import logging
from pprint import pformat as pf

__all__ = ['Logger', 'pf']

NOTICE = logging.INFO + 5
logging.addLevelName(NOTICE, 'NOTICE')


class Logger(logging.LoggerAdapter):
    """A logbook-style logger (debug … notice … critical) over the logging module."""

    def __init__(self, name: str) -> None:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.DEBUG,
                                format='[%(asctime)s] %(levelname)s: %(name)s: %(message)s')
        super().__init__(logging.getLogger(name), {})

    def notice(self, msg: str, *args, **kwargs) -> None:
        """Log msg at NOTICE level, between INFO and WARNING."""
        self.log(NOTICE, msg, *args, **kwargs)
