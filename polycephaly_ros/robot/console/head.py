"""The service's console head: the mobile web console and the pairing of phones (issue 16).

:class:`ConsoleHead` is a thread head of the system service (``service.console``). Its
birth() opens the pairing store (:mod:`.pairing`, in ``state_dir``), makes the TLS context
(:mod:`.tls`) and starts the HTTP server (:mod:`.web`) in an asyncio thread of
its own, bound to ``host:port`` (port 0: a free one); death() stops it.

kwargs (from add_process): ``settings`` (``service.console``), ``namespace`` (for the default
state directory), ``service`` (the main head's name).

Envelopes it takes, from the main head only (internal route: the main head relays the
service's ``pair``, ``devices`` and ``revoke_device`` requests here):

* ``pair`` -> ``{"url": <console URL>/pair?code=..., "code": "XXXX-XXXX", "expires": epoch s,
  "ttl": s}`` (a new one-time code; the previous unused one is refused from now on);
* ``devices`` -> ``{"devices": [{"id", "name", "paired", "last_seen"}]}``;
* ``revoke_device`` ``{"id": ...}`` -> ``{"revoked": id}`` (its open pages are told at once),
  or an ``error`` naming the unknown id.

The console's own requests (status, the admin actions) go to the main head as envelopes from
this head, and the answers come back on their threads. The URL is ``public_url`` when set,
else ``http(s)://host:<port bound>`` (for a host of 0.0.0.0 or ::, the machine's address).

Threading contract: the pairing store is shared with the HTTP thread (it locks). The HTTP
thread reaches this head only through :meth:`ConsoleHead.ask_service`, which hands the
request to this head's thread (``inbox.call_soon_threadsafe``); sending, the table of pending
requests and their time-outs live in this head's thread only, and each answer goes back with
the HTTP loop's ``call_soon_threadsafe``. A console that cannot serve (its address in use, a
bad state directory or certificate, its HTTP thread failed) never fails the head, so it never
stops the service: it logs why, answers ``pair`` with that reason and tries again, after 1 s,
doubling up to 30 s.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

from ...errors import ConfigurationError, PolycephalyError
from ...filters import message_filter
from ..common import RobotHead
from .tls import CERT_FILE, fingerprint, own_address, server_context
from .pairing import PairingStore, UnknownDevice, default_state_dir, secure_directory

if TYPE_CHECKING:
    from .web import ConsoleServer

Done = Callable[[str, Any], None]
#: s before trying again to serve after a failure (address in use, ...): first, longest.
RETRY = (1.0, 30.0)


def state_dir(settings: dict, namespace: str) -> str:
    """Return the console's state directory: state_dir, or the per-user, per-namespace one."""
    return os.path.expanduser(settings['state_dir'] or default_state_dir(namespace))


def console_url(settings: dict, port: int) -> str:
    """Return the URL phones open: public_url, else http(s)://host:port."""
    if settings['public_url']:
        return settings['public_url'].rstrip('/')
    scheme = 'http' if settings['tls'] == 'none' else 'https'
    host = settings['host']
    if host in ('', '0.0.0.0', '::'):
        host = own_address(host == '::')
    if ':' in host:
        host = f'[{host}]'
    return f'{scheme}://{host}:{port}'


class ConsoleHead(RobotHead):
    """Serve the mobile console; answer pair, devices and revoke_device from the main head."""

    def birth(self) -> None:
        s = self.settings = self.kwargs['settings']
        self.service = self.kwargs.get('service', 'service')
        self.asked: dict[str, tuple[Done, str]] = {}   # thread -> (done, subject)
        self.add_filter(self._answered, threadid=lambda thread: thread in self.asked)
        self.store: PairingStore | None = None
        self.server: ConsoleServer | None = None       # once it listens
        self.url = ''
        self.problem = ''                              # why it does not serve, in words
        self.retry_in = RETRY[0]
        self.retry_at = 0.0
        if s['code_attempts'] < 1 or s['code_ttl'] <= 0:
            self.problem = ('service.console: code_attempts must be at least 1 and code_ttl '
                            'positive')
            self.logger.error('the mobile console is off: %s', self.problem)
            self.retry_at = float('inf')
            return
        self._open()

    def life(self) -> None:
        self.mailman()
        if self.server is None and time.monotonic() >= self.retry_at:
            self._open()

    def _open(self) -> None:
        """Open the store and start serving; on failure, say why and try again later."""
        from .web import ConsoleServer  # (aiohttp: imported where it is used)

        s = self.settings
        server = None
        try:
            directory = secure_directory(state_dir(s, self.kwargs.get('namespace', '')))
            if self.store is None:
                self.store = PairingStore(directory, s['code_ttl'], s['code_attempts'])
            server = ConsoleServer(
                self.store, self.ask_service, host=s['host'], port=s['port'],
                ssl_context=server_context(s, directory), status_period=s['status_period'],
                console_head=self.name, failed=self._http_failed)
            port = server.start()
        except (ConfigurationError, OSError, TimeoutError) as exc:
            if server is not None:
                server.stop()
            problem = f'{type(exc).__name__}: {exc}'
            if problem != self.problem:
                self.logger.error('the mobile console cannot serve (trying again every %g s '
                                  'at most): %s', RETRY[1], problem)
            self.problem = problem
            self.retry_at = time.monotonic() + self.retry_in
            self.retry_in = min(self.retry_in * 2, RETRY[1])
            return
        self.server, self.problem, self.retry_in = server, '', RETRY[0]
        self.url = console_url(s, port)
        self.logger.info('mobile console on %s (listening on %s:%d, %s; %d paired device(s); '
                         'state in %s)', self.url, s['host'], port,
                         'TLS' if s['tls'] != 'none' else 'no TLS',
                         len(self.store.devices()), directory)
        if s['tls'] == 'self_signed':
            self.logger.info('its self-signed certificate\'s SHA-256 fingerprint (compare it '
                             'on the phone): %s', fingerprint(os.path.join(directory, CERT_FILE)))

    def death(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.store is not None:
            self.store.close()

    # -- the HTTP thread's requests -------------------------------------------------------
    def ask_service(self, subject: str, body: Any, timeout: float, done: Done) -> None:
        """Send subject to the main head; done(subject, body) gets its answer (any thread)."""
        self.runtime.inbox.call_soon_threadsafe(lambda: self._ask(subject, body, timeout, done))

    def _ask(self, subject: str, body: Any, timeout: float, done: Done) -> None:
        try:
            sent = self.send(self.service, subject, body, timeout=0)
        except PolycephalyError as exc:
            done('error', {'error': f'the service cannot take it now: {exc}'})
            return
        thread = sent['threadid']
        self.asked[thread] = (done, subject)
        self.runtime.inbox.call_later(timeout, lambda: self._late(thread, timeout))

    def _answered(self, answer: dict) -> None:
        if answer.get('sender') != self.service:
            return
        done, _ = self.asked.pop(answer['threadid'])
        done(answer.get('subject', 'reply'), answer.get('body'))

    def _late(self, thread: str, timeout: float) -> None:
        pending = self.asked.pop(thread, None)
        if pending is not None:
            done, subject = pending
            done('error', {'error': f'no answer to {subject!r} within {timeout:g} s'})

    def _http_failed(self, exc: BaseException) -> None:
        """Have this head's thread start serving again after the HTTP thread failed (any thread)."""
        self.runtime.inbox.call_soon_threadsafe(lambda: self._lost(exc))

    def _lost(self, exc: BaseException) -> None:
        self.logger.error('the console\'s HTTP server failed; starting it again', exc_info=exc)
        if self.server is not None:
            self.server.stop()
        self.server, self.problem = None, f'{type(exc).__name__}: {exc}'
        self.retry_at = time.monotonic() + self.retry_in

    # -- the main head's requests ----------------------------------------------------------
    def _from_main(self, message: dict, serving: bool = False) -> bool:
        """Tell whether message may be answered; refuse it (saying why) when not."""
        if message.get('sender') != self.service:
            self.refuse(message, 'only the service\'s main head asks the console this')
            return False
        if (self.server is None if serving else self.store is None):
            self.refuse(message, f'the mobile console is not serving: {self.problem}')
            return False
        return True

    @message_filter(subject='pair')
    def pair(self, message: dict) -> None:
        if self._from_main(message, serving=True):
            code = self.store.new_code()
            self.logger.info('new pairing code (valid %g s), asked by %r', code['ttl'],
                             message.get('sender'))
            self.respond(message, {'url': f'{self.url}/pair?code={code["code"]}', **code})

    @message_filter(subject='devices')
    def devices(self, message: dict) -> None:
        if self._from_main(message):
            self.respond(message, {'devices': self.store.devices()})

    @message_filter(subject='revoke_device')
    def revoke_device(self, message: dict) -> None:
        if not self._from_main(message):
            return
        body = message.get('body')
        device_id = body.get('id') if isinstance(body, dict) else None
        if not isinstance(device_id, str) or not device_id:
            self.refuse(message, 'revoke_device needs {"id": <device id>} (see devices)')
            return
        try:
            device = self.store.revoke(device_id)
        except UnknownDevice as exc:
            self.refuse(message, str(exc))
            return
        if self.server is not None:
            self.server.drop_device(device_id)
        self.logger.warning('revoked paired device %r (%s)', device['name'], device_id)
        self.respond(message, {'revoked': device_id})

    @message_filter(route=None)
    def other(self, message: dict) -> None:
        """Log what nobody takes (a late answer, after its request timed out)."""
        if message.get('route', 'internal') != 'internal' and message.get('subject') != 'error':
            self.refuse(message, f'the console takes nothing from outside (route '
                                 f'{message.get("route")!r})')
        else:
            self.logger.debug('dropped %r from %r', message.get('subject'),
                              message.get('sender'))
