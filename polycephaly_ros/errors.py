"""Errors raised by polycephaly_ros, each naming what was wrong."""

from __future__ import annotations


class PolycephalyError(Exception):
    """Base class of every error raised by polycephaly_ros."""


class EnvelopeError(PolycephalyError, ValueError):
    """An envelope or one of its headers is malformed."""


class NotSerializable(EnvelopeError):
    """An envelope cannot cross a process or route boundary."""


class UnknownRecipient(PolycephalyError, LookupError):
    """No head of this application (or route) answers to the recipient's name."""


class RecipientUnavailable(PolycephalyError):
    """The recipient exists but is not running, so it cannot take mail."""


class QueueFull(PolycephalyError):
    """The recipient's queue stayed full for the whole send timeout."""


class NoReply(PolycephalyError, TimeoutError):
    """No reply arrived within the timeout given to wait_for_reply."""


class ConfigurationError(PolycephalyError, ValueError):
    """An application or head was configured with an invalid value."""
