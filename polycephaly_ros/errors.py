"""The error model: everything polycephaly_ros raises is a PolycephalyError, naming what was wrong.

Each error also derives from the standard exception a Python programmer would catch for the
same kind of fault (``ValueError``, ``LookupError``, ``TimeoutError``, ``RuntimeError``), so
code written against the standard library keeps working.

=========================  ========================  =============================================
error                      also a                    raised when
=========================  ========================  =============================================
``EnvelopeError``          ``ValueError``            an envelope or header is malformed or reserved
``NotSerializable``        ``EnvelopeError``         an envelope cannot cross a process or route
``UnknownRecipient``       ``LookupError``           no head (or route peer) has the name
``RecipientUnavailable``                             the recipient exists but cannot take mail
``Unreachable``            both of the above         no head has the name and no ROS subscriber
                                                     of its inbox topic appeared in time
``QueueFull``                                        the recipient's queue stayed full
``NoReply``                ``TimeoutError``          no reply came within wait_for_reply's timeout
``ConfigurationError``     ``ValueError``            an option, a head class, a config file is bad
``UnknownHead``            ``LookupError``           a control call names no head of the application
``StateError``             ``RuntimeError``          a call does not fit the current state (add a
                                                     head after run(), start a running head, ...)
``RosError``               ``RuntimeError``          rcl refused a call the package needs
=========================  ========================  =============================================
"""

from __future__ import annotations

__all__ = [
    'PolycephalyError', 'EnvelopeError', 'NotSerializable', 'UnknownRecipient',
    'RecipientUnavailable', 'Unreachable', 'QueueFull', 'NoReply', 'ConfigurationError',
    'UnknownHead', 'StateError', 'RosError',
]


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


class Unreachable(RecipientUnavailable, UnknownRecipient):
    """No head of this application has the name, and no subscriber of its ROS inbox appeared.

    Both a RecipientUnavailable (the bounded wait for a ROS subscriber ran out) and an
    UnknownRecipient (it is no head of this application), so code catching either keeps
    working whether the application runs with ROS or without.
    """


class QueueFull(PolycephalyError):
    """The recipient's queue stayed full for the whole send timeout."""


class NoReply(PolycephalyError, TimeoutError):
    """No reply arrived within the timeout given to wait_for_reply."""


class ConfigurationError(PolycephalyError, ValueError):
    """An application or head was configured with an invalid value.

    Raised while a head runs (a socket path another server holds, say), it ends the
    application instead of restarting the head, since a restart cannot fix it: run() returns
    :data:`EXIT_CONFIG`.
    """


#: What Application.run() returns when a ConfigurationError stopped it (sysexits' EX_CONFIG).
EXIT_CONFIG = 78


class UnknownHead(PolycephalyError, LookupError):
    """An application control call (start, stop, restart) names no head of the application."""


class StateError(PolycephalyError, RuntimeError):
    """A call does not fit the current state of the application, a head or a transport."""


class RosError(PolycephalyError, RuntimeError):
    """rcl refused a call this package needs, or its native callback cannot be loaded."""
