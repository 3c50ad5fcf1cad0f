"""Envelopes on ROS topics: each head's inbox topics, and publishing to outside names."""

from __future__ import annotations

from typing import Any


def open_ros_inbox(head: Any) -> Any:
    """Subscribe head's node to its inbox topics and let its bus publish to outside names."""
    return None
