"""Tests of the log throttle: a flood of bad input is a few lines and a count, not a flood."""

from __future__ import annotations

import logging

import pytest

from polycephaly_ros.throttle import Throttle

pytestmark = pytest.mark.fast


def test_a_kind_logs_its_burst_then_holds_back_and_says_how_many_later(caplog):
    caplog.set_level(logging.WARNING, logger='t')
    throttle = Throttle(logging.getLogger('t'), period=3600.0, burst=2)
    logged = [throttle.warning('bad', 'line %d', i) for i in range(5)]
    assert logged == [True, True, False, False, False]
    assert throttle.warning('other', 'another kind') is True  # (each kind has its own burst)
    throttle.period = 0.0  # the window is over: the next line says what was held back
    assert throttle.warning('bad', 'line %d', 5) is True
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ['line 0', 'line 1', 'another kind',
                     'line 5 (3 more like this in the last 0 s were not logged)']


def test_the_class_defaults_apply_to_every_throttle_without_its_own():
    assert (Throttle.period, Throttle.burst) == (10.0, 5)
    throttle = Throttle(logging.getLogger('t'))
    assert (throttle.period, throttle.burst) == (10.0, 5)
    assert Throttle(logging.getLogger('t'), burst=1).burst == 1
