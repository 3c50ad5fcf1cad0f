"""The touchscreen's carrier heads: each takes a request to the service and brings back its outcome.

The touchscreen runs two of them as thread heads (``touchscreen_poll`` for the periodic status
and diagnostics requests, ``touchscreen_admin`` for administrative actions, see
:mod:`.main`). The main head hands one a ``request`` envelope with body ``{"tag",
"subject", "body", "timeout"?}``; the carrier sends ``subject`` and ``body`` to the service
(with the transport's ``via`` headers, :func:`.link.via_headers`), waits for the reply
(``wait_for_reply`` with the request's ``timeout`` or the head's own) and answers the main head
with a ``result`` envelope: ``{"tag", "subject", "request" (the request's body), "ok",
"reachable", "body" or "error", "seconds"}``. ``reachable`` is False when no reply came in time
or the route bounced the request (the service is gone); an ``error`` reply from the service
itself is reachable but not ok.

Threading: a carrier waits in its own thread, one request at a time, so the main head (and the
window it drives) never waits on the service. ``link_changed`` envelopes the service pushes to
a subscriber arrive here, on any route, and are passed on to the main head.
"""

from __future__ import annotations

import time
from typing import Any

from ...errors import NoReply, PolycephalyError
from ...filters import message_filter
from ..common import RobotHead


class ClientHead(RobotHead):
    """Carry requests to the service: send, wait for the reply, hand the outcome back."""

    def birth(self) -> None:
        self.service = self.kwargs['service']
        self.via = dict(self.kwargs.get('via') or {})
        self.timeout = float(self.kwargs['timeout'])
        self.main = self.kwargs['main']

    @message_filter(subject='request')
    def request(self, message: dict) -> None:
        """Send the request in message to the service; answer message with the outcome."""
        job = message['body']
        timeout = float(job.get('timeout') or self.timeout)
        started = time.monotonic()
        result: dict[str, Any] = {'tag': job['tag'], 'subject': job['subject'],
                                  'request': job.get('body')}
        try:
            sent = self.send(self.service, job['subject'], job.get('body'), **self.via)
            answer = self.wait_for_reply(sent, timeout)
        except NoReply:
            result.update(ok=False, reachable=False,
                          error=f'no reply from {self.service!r} within {timeout:g} s')
        except PolycephalyError as exc:
            result.update(ok=False, reachable=False, error=str(exc))
        else:
            body = answer.get('body')
            if answer.get('subject') == 'error':
                error = body.get('error') if isinstance(body, dict) else body
                result.update(ok=False, error=str(error),
                              reachable='bounced_by' not in answer)
            else:
                result.update(ok=True, reachable=True, body=body)
        result['seconds'] = round(time.monotonic() - started, 4)
        self.respond(message, result, subject='result')

    @message_filter(route=None, subject='link_changed')
    def on_link(self, message: dict) -> None:
        """Pass a link change the service pushed on to the main head."""
        self.tell(self.main, 'link_changed', message.get('body'))
