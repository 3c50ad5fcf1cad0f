"""The event loop of a thread: descriptors and timers."""

from __future__ import annotations

import os

import pytest

from polycephaly_ros.loop import Loop

pytestmark = pytest.mark.fast


def test_a_readable_descriptor_calls_back_until_unwatched():
    loop = Loop()
    r, w = os.pipe()
    seen: list[bytes] = []
    try:
        loop.watch(r, lambda fd: seen.append(os.read(fd, 10)))
        os.write(w, b'a')
        loop.run_once(5.0)
        assert seen == [b'a']
        loop.unwatch(r)
        os.write(w, b'b')
        loop.run_once(0.05)  # nothing watched is ready: returns after the timeout
        assert seen == [b'a']
    finally:
        loop.close()
        os.close(r)
        os.close(w)


def test_timers_run_in_due_order_and_end_a_wait_that_would_last_for_ever():
    loop = Loop()
    calls: list[str] = []
    try:
        loop.call_later(0.2, lambda: calls.append('second'))
        loop.call_later(0.0, lambda: calls.append('first'))
        loop.run_once(0.0)
        assert calls == ['first']  # the later one is not due yet
        loop.run_once(None)  # would wait for ever without a timer due
        assert calls == ['first', 'second']
    finally:
        loop.close()


def test_a_callback_may_unwatch_another_ready_descriptor():
    loop = Loop()
    pipes = [os.pipe(), os.pipe()]
    seen: list[int] = []

    def first(fd: int) -> None:
        seen.append(fd)
        for r, _ in pipes:
            if r != fd:
                loop.unwatch(r)

    try:
        for r, w in pipes:
            loop.watch(r, first)
            os.write(w, b'x')
        loop.run_once(5.0)
        assert len(seen) == 1  # the other one was unwatched before its turn
    finally:
        loop.close()
        for r, w in pipes:
            os.close(r)
            os.close(w)
