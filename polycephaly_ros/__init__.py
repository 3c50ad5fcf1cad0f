"""polycephaly_ros: robot programs from several heads that talk in email-like envelopes."""

from . import compat
from .application import Application
from .errors import (EXIT_CONFIG, ConfigurationError, EnvelopeError, NoReply, NotSerializable,
                     PolycephalyError,
                     QueueFull, RecipientUnavailable, RosError, StateError, UnknownHead,
                     UnknownRecipient, Unreachable)
from .filters import message_filter
from .head import Process

compat.install()  # the seed's camelCase names, so a Polycephaly program ports by its imports

__all__ = [
    'Application', 'Process', 'message_filter', 'PolycephalyError', 'ConfigurationError',
    'EnvelopeError', 'NotSerializable', 'UnknownRecipient', 'RecipientUnavailable',
    'Unreachable', 'QueueFull', 'NoReply', 'UnknownHead', 'StateError', 'RosError',
    'EXIT_CONFIG',
]
