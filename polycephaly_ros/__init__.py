"""polycephaly_ros: robot programs from several heads that talk in email-like envelopes."""

from .application import Application
from .errors import (ConfigurationError, EnvelopeError, NoReply, NotSerializable, PolycephalyError,
                     QueueFull, RecipientUnavailable, UnknownRecipient)
from .filters import message_filter
from .head import Process

__all__ = [
    'Application', 'Process', 'message_filter', 'PolycephalyError', 'ConfigurationError',
    'EnvelopeError', 'NotSerializable', 'UnknownRecipient', 'RecipientUnavailable', 'QueueFull',
    'NoReply',
]
