"""The robot's head base class: answers and sends to the outside that log instead of raising."""

from __future__ import annotations

from typing import Any

from ..errors import PolycephalyError
from ..head import Process

ERROR = 'error'


class RobotHead(Process):
    """A head whose answers to the outside never take the head down."""

    def respond(self, message: dict, body: Any = None, subject: str = 'reply') -> bool:
        """Reply to message; log (not raise) when the answer cannot be delivered."""
        try:
            self.reply(message, body, subject=subject)
        except PolycephalyError as exc:
            self.logger.warning('could not answer %r from %r: %s', message.get('subject'),
                                message.get('sender'), exc)
            return False
        return True

    def refuse(self, message: dict, reason: str) -> bool:
        """Answer message with an error (subject "error", body {"error": reason})."""
        self.logger.info('refused %r from %r: %s', message.get('subject'), message.get('sender'),
                         reason)
        return self.respond(message, {'error': reason}, subject=ERROR)

    def tell(self, recipient: str, subject: str, body: Any = None, **headers: Any) -> bool:
        """Send without raising; log when it cannot be delivered."""
        try:
            self.send(recipient, subject, body, **headers)
        except PolycephalyError as exc:
            self.logger.debug('could not send %r to %r: %s', subject, recipient, exc)
            return False
        return True
