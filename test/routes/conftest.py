"""Route tests need no ROS: starting rclpy in this process fails the test."""

from __future__ import annotations

from typing import Any

import pytest

from polycephaly_ros.ros import host as rclpy_host


@pytest.fixture(autouse=True)
def _no_rclpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test that starts rclpy here (an Application built without ros=False would)."""
    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError('a route test started rclpy: give its Application ros=False')

    monkeypatch.setattr(rclpy_host.RclpyHost, '__init__', refuse)
