"""The main head: answers every salutation."""

import logging
from pprint import pformat

import polycephaly_ros

logger = logging.getLogger(__name__)


class Process(polycephaly_ros.Process):
    """Reply to salutations; the default life() runs the mailman."""

    def salutation(self, message: dict) -> None:
        """Answer a salutation on its thread (runs in the main head's thread)."""
        logger.info("'%s' received a salutation message from '%s':\n%s",
                    self.name, message['sender'], pformat(message))
        reply = self.reply(message, body='Hi, thanks for writing.', acme=123)
        logger.info("'%s' sent a reply to '%s':\n%s", self.name, reply['recipient'], pformat(reply))

    def birth(self) -> None:
        """Route case-insensitive "salutation" subjects to salutation()."""
        self.add_filter(subject=r'(?i)^SALUTATION$', callback=self.salutation)
