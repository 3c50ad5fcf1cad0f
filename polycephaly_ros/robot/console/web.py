"""The mobile console's HTTP server: aiohttp in an asyncio thread of its own.

Endpoints (every response: ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer``, a
CSP that lets in nothing but the page's own nonce, no framing):

==========================  ======================================================  =========
``GET /``, ``GET /pair``    the pages (:mod:`.page`); they hold no data      anyone
``POST /api/pair``          ``{"code", "name"}``: uses the code, sets the cookie     CSRF
``GET /api/status``         the service's status and this phone's device             paired
``GET /api/events``         server-sent events: ``status`` every ``status_period``   paired
``POST /api/action``        ``{"subject", "body"}`` (:mod:`.actions`)        paired+CSRF
==========================  ======================================================  =========

A paired phone holds the device token in the cookie :data:`COOKIE` (HttpOnly, SameSite=Strict,
Secure under TLS, path /). Refusals are JSON ``{"error": words}``: 400 a bad request, 401 not
paired or revoked, 403 a wrong, used or expired code or a missing CSRF header, 413 too large,
429 too many wrong codes (with Retry-After), 502/504 the service refused or did not answer.
Bodies are at most :data:`MAX_BODY` bytes of JSON.

Threading contract: :meth:`ConsoleServer.start` and :meth:`ConsoleServer.stop` are called by
the owning head's thread; everything else runs in the server's asyncio thread, except
:meth:`ConsoleServer.drop_device`, which any thread may call. The service is asked through
``ask(subject, body, timeout, done)``, which must be safe from any thread and call
``done(answer_subject, answer_body)`` exactly once, from any thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import threading
from typing import Any, Callable

from aiohttp import web

from . import actions, page
from .pairing import CodeRefused, NotPaired, PairingStore, TooManyAttempts

COOKIE = 'polycephaly_console'
MAX_BODY = 4096
STATUS_TIMEOUT = 5.0     # s for a status answer
ACTION_TIMEOUT = 30.0    # s for an action's answer (a head's stop may take threads_timeout)
#: Ask(subject, body, timeout, done): send to the service; done(subject, body) once answered.
Ask = Callable[[str, Any, float, Callable[[str, Any], None]], None]

_log = logging.getLogger('polycephaly_ros.console')


class Refused(Exception):
    """An HTTP refusal: status and the words for the phone."""

    def __init__(self, status: int, error: str, **headers: str) -> None:
        super().__init__(error)
        self.status = status
        self.headers = headers


class ConsoleServer:
    """Serve the console on host:port until stop(); see the module doc."""

    def __init__(self, store: PairingStore, ask: Ask, *, host: str, port: int,
                 ssl_context: ssl.SSLContext | None, status_period: float, console_head: str,
                 failed: Callable[[BaseException], None]) -> None:
        self.store = store
        self._ask = ask
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.status_period = max(float(status_period), 0.1)
        self.console_head = console_head
        self._failed = failed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name='console-http', daemon=True)
        self._streams: dict[asyncio.Queue, str] = {}   # an open events stream -> device id
        self._wanted: asyncio.Event | None = None      # set while a stream is open

    # -- the thread ----------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> int:
        """Start serving; return the port bound, or raise what prevented it."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f'the console did not start listening within {timeout:g} s')
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and end the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and self._thread.is_alive():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # (the loop already closed)
                pass
        if self._thread.is_alive():
            self._thread.join(timeout)

    def drop_device(self, device_id: str) -> None:
        """End the event streams of a revoked device, telling its page why (any thread)."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._drop, device_id)
            except RuntimeError:
                pass

    def _drop(self, device_id: str) -> None:
        for queue, owner in list(self._streams.items()):
            if owner == device_id:
                _offer(queue, ('revoked', {'error': 'this phone\'s pairing was revoked on the '
                                           'robot: scan a new QR code to pair it again'}))

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - told to the head, which fails with it
            if not self._started.is_set():
                self._error = exc
                self._started.set()
            else:
                self._failed(exc)
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._wanted = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_get('/', self._page)
        app.router.add_get('/pair', self._page)
        app.router.add_post('/api/pair', self._pair)
        app.router.add_get('/api/status', self._status)
        app.router.add_get('/api/events', self._events)
        app.router.add_post('/api/action', self._action)
        app.on_response_prepare.append(_secure_headers)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context,
                               shutdown_timeout=1.0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._started.set()
            poller = asyncio.create_task(self._poll_status())
            await self._stopping.wait()
            poller.cancel()
            for queue in list(self._streams):
                _offer(queue, ('close', None))
        finally:
            await runner.cleanup()

    # -- plumbing ------------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Turn a Refused (and a body too large) into a JSON answer."""
        try:
            return await handler(request)
        except Refused as refused:
            return web.json_response({'error': str(refused)}, status=refused.status,
                                     headers=refused.headers)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({'error': f'at most {MAX_BODY} bytes'}, status=413)

    async def ask(self, subject: str, body: Any, timeout: float) -> tuple[str, Any]:
        """Ask the service (through the head's thread); return (answer subject, body)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def settle(answer_subject: str, answer: Any) -> None:
            if not future.done():
                future.set_result((answer_subject, answer))

        def done(answer_subject: str, answer: Any) -> None:
            try:
                loop.call_soon_threadsafe(settle, answer_subject, answer)
            except RuntimeError:  # (the loop closed: nobody waits any more)
                pass

        self._ask(subject, body, timeout, done)
        return await future

    def _device(self, request: web.Request, changes: bool = False) -> dict[str, Any]:
        """Return the paired device making request, or raise Refused (CSRF first)."""
        if changes:
            _csrf(request)
        try:
            return self.store.check(request.cookies.get(COOKIE))
        except NotPaired as exc:
            raise Refused(401, str(exc)) from None

    # -- endpoints -----------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        nonce = request['nonce'] = secrets.token_urlsafe(16)
        text = (page.pair_page(nonce) if request.path == '/pair'
                else page.console_page(nonce, self.console_head))
        return web.Response(text=text, content_type='text/html', charset='utf-8')

    async def _pair(self, request: web.Request) -> web.Response:
        _csrf(request)
        payload = await _json(request)
        code, name = payload.get('code'), payload.get('name', 'phone')
        if not isinstance(code, str) or not isinstance(name, str) or len(code) > 32:
            raise Refused(400, 'send {"code": text, "name": text}')
        previous = request.cookies.get(COOKIE)
        try:
            device, token = self.store.pair(code, name, request.remote or '?')
        except TooManyAttempts as exc:
            raise Refused(429, str(exc), **{'Retry-After': str(exc.wait)}) from None
        except CodeRefused as exc:
            _log.warning('refused a pairing from %s: %s', request.remote, exc)
            raise Refused(403, str(exc)) from None
        try:  # the phone was paired before: its old pairing goes
            old = self.store.check(previous)
        except NotPaired:
            pass
        else:
            self.store.revoke(old['id'])
        _log.warning('paired device %r (%s) from %s', device['name'], device['id'],
                     request.remote)
        response = web.json_response({'device': device})
        response.set_cookie(COOKIE, token, max_age=400 * 86400, path='/', httponly=True,
                            samesite='Strict', secure=self.ssl_context is not None)
        return response

    async def _status(self, request: web.Request) -> web.Response:
        device = self._device(request)
        subject, status = await self.ask('status', None, STATUS_TIMEOUT)
        if subject != 'reply':
            raise Refused(502, f'the service did not give its status: {_reason(status)}')
        return web.json_response({'status': status, 'device': device})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        device = self._device(request)
        response = web.StreamResponse(headers={'Content-Type': 'text/event-stream',
                                               'X-Accel-Buffering': 'no'})
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        self._streams[queue] = device['id']
        self._wanted.set()
        try:
            while True:
                kind, data = await queue.get()
                if kind == 'close':
                    break
                if kind == 'status':  # (the device may have been revoked meanwhile)
                    try:
                        self.store.check(request.cookies.get(COOKIE))
                    except NotPaired as exc:
                        kind, data = 'revoked', {'error': str(exc)}
                await response.write(f'event: {kind}\ndata: {json.dumps(data)}\n\n'.encode())
                if kind == 'revoked':
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            del self._streams[queue]
            if not self._streams:
                self._wanted.clear()
        return response

    async def _poll_status(self) -> None:
        """Ask the status every status_period while a stream is open; send it to each."""
        while True:
            await self._wanted.wait()
            subject, status = await self.ask('status', None, STATUS_TIMEOUT)
            event = (('status', status) if subject == 'reply' else
                     ('problem', {'error': f'the service did not answer: {_reason(status)}'}))
            for queue in list(self._streams):
                _offer(queue, event)
            await asyncio.sleep(self.status_period)  # (the pace of updates, not a wait)

    async def _action(self, request: web.Request) -> web.Response:
        device = self._device(request, changes=True)
        payload = await _json(request)
        try:
            subject, body = actions.check_action(payload, self.console_head)
        except actions.BadAction as exc:
            raise Refused(400, str(exc)) from None
        _log.warning('%r (%s) asks %s %s', device['name'], device['id'], subject, body)
        answer_subject, answer = await self.ask(subject, body, ACTION_TIMEOUT)
        text = actions.describe(subject, body, answer_subject, answer)
        return web.json_response({'ok': answer_subject == 'reply', 'text': text,
                                  'reply': answer})


def _offer(queue: asyncio.Queue, item: tuple[str, Any]) -> None:
    """Queue item for a stream; a slow stream loses its oldest status instead of blocking."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


def _reason(body: Any) -> str:
    return str(body.get('error') if isinstance(body, dict) else body)


def _csrf(request: web.Request) -> None:
    if request.headers.get(page.CSRF_HEADER) != '1':
        raise Refused(403, f'refused: a request that changes something needs the '
                           f'{page.CSRF_HEADER} header (cross-site requests are refused)')


async def _json(request: web.Request) -> dict[str, Any]:
    """Return the request's body as a JSON object, or raise Refused."""
    if request.content_type != 'application/json':
        raise Refused(400, 'send JSON (Content-Type: application/json)')
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refused(413, f'at most {MAX_BODY} bytes')
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, 'the body is not JSON') from None
    if not isinstance(payload, dict):
        raise Refused(400, 'send a JSON object')
    return payload


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the headers every answer carries (see the module doc)."""
    nonce = request.get('nonce')
    sources = (f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
               "img-src data:; form-action 'self'; " if nonce else '')
    response.headers['Content-Security-Policy'] = (
        f"default-src 'none'; {sources}base-uri 'none'; frame-ancestors 'none'")
    response.headers['Cache-Control'] = 'no-store'
    response.headers['Referrer-Policy'] = 'no-referrer'
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.headers['X-Frame-Options'] = 'DENY'
