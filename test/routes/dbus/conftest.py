"""A real dbus-daemon for every D-Bus route test, started by the test (never the machine's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from dbus_daemon import DbusDaemon
from robot_support import procs  # noqa: F401 (fixture)


@pytest.fixture
def daemon(tmp_path: Path, procs: Any) -> Iterator[DbusDaemon]:  # noqa: F811
    """A dbus-daemon with an open policy on a socket of its own.

    Stopped before the test's other programs (procs), which then checks nothing is left over.
    """
    with DbusDaemon(tmp_path / 'bus') as running:
        yield running
