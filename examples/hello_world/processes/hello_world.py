"""The hello head: sends a salutation to main, waits for the reply, and logs both."""

import logging
from pprint import pformat

import polycephaly_ros

logger = logging.getLogger(__name__)


class Process(polycephaly_ros.Process):
    """Greet the main head once per life(); stop after `count` greetings if given."""

    def birth(self) -> None:
        """Remember how many greetings to send (0: forever)."""
        self.sent = 0
        self.count = int(self.kwargs.get('count') or 0)

    def life(self) -> None:
        """Send a salutation and wait for the reply."""
        message = self.send('main', 'salutation', 'Hello, World!',
                            args=self.args, kwargs=self.kwargs)
        logger.info("'%s' sent a message to '%s':\n%s", self.name, message['recipient'],
                    pformat(message))
        reply = self.wait_for_reply(message, timeout=10)
        logger.info("'%s' received a reply from '%s':\n%s", self.name, reply.get('sender'),
                    pformat(reply))
        self.sent += 1
        if self.count and self.sent >= self.count:
            self.send('main', self.kwargs['ppill'])  # the poison pill stops the application
        self.mailman()
