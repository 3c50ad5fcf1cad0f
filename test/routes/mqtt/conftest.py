"""A real mosquitto for every MQTT route test, started on loopback by the test itself."""

from __future__ import annotations

import pytest

from broker import Broker
from robot_support import procs  # noqa: F401 (fixture)


@pytest.fixture
def broker(tmp_path, procs):  # noqa: F811
    """A plain broker (anonymous clients, no TLS) on a free loopback port.

    Stopped before the test's other programs (procs), which then checks nothing is left over.
    """
    with Broker(tmp_path / 'broker') as running:
        yield running


@pytest.fixture
def secure_broker(tmp_path, procs):  # noqa: F811
    """A broker that refuses anonymous clients and also listens with TLS (broker.tls_port)."""
    with Broker(tmp_path / 'broker', tls=True, users={'robot': 'secret'}) as running:
        yield running
