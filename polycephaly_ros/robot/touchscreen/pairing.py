"""The pair view's model: the pairing code the service handed out, the paired devices, and when
to ask the service again.

The service answers ``pair`` with ``{"url", "code", "expires" (epoch s), "ttl" (s)}`` (the URL
ends ``?code=XXXX-XXXX``), ``devices`` with ``{"devices": [{"id", "name", "paired",
"last_seen"}]}`` and ``revoke_device`` ``{"id"}`` with ``{"revoked": id}``; any of them may be
an ``error`` reply instead (a service without pairing answers "unknown subject"), which makes
pairing *unavailable*, with its reason, until an answer comes.

While the pair view is shown, the main head (:mod:`.main`) sends what :meth:`Pairing.due`
names and hands each outcome back (:meth:`Pairing.on_code`, :meth:`Pairing.on_devices`). A code
is asked for when the view is shown without a valid one, when it expires, when a device paired
since it was handed out (a code works once), and on the ``pair`` command; the devices when the
view is shown, every :data:`DEVICES_PERIOD` seconds while it is, and after a revocation; after
an error, again :data:`RETRY` seconds later.

Threading: plain data, used only in the main head's thread.
"""

from __future__ import annotations

import math
from typing import Any

from .qr import qr_matrix

RETRY = 10.0          # s before asking again after an error
DEVICES_PERIOD = 3.0  # s between devices requests while the view is shown
NEVER = math.inf


class Pairing:
    """The current pairing code and the paired devices, as the service last told them."""

    def __init__(self) -> None:
        self.code: dict | None = None        # url, code, expires, ttl
        self.qr: list[list[bool]] | None = None
        self.error = ''                      # why pairing is unavailable ('' = it is not)
        self.devices: list[dict] | None = None
        self.devices_error = ''
        self.paired: list[dict] = []         # devices that appeared at the last answer
        self._due = {'pair': 0.0, 'devices': 0.0}
        self._waiting: set[str] = set()      # answers the view waits for since it was shown
        self._received = 0.0                 # epoch s the current code arrived

    # -- what to ask ---------------------------------------------------------------------
    def valid(self, wall: float) -> bool:
        """Tell whether the current code is still valid at wall (epoch s)."""
        return self.code is not None and self.code['expires'] > wall

    def remaining(self, wall: float) -> float | None:
        """Return the seconds the current code still lives (None without one)."""
        return max(0.0, self.code['expires'] - wall) if self.code else None

    def show(self, now: float, wall: float) -> None:
        """The view is shown (now monotonic, wall epoch s): ask for what it lacks."""
        self._due['devices'] = now
        self._waiting = {'devices'}
        if not self.valid(wall):
            self._due['pair'] = now
            self._waiting.add('pair')

    def renew(self, now: float) -> None:
        """Ask for a new code at once (the ``pair`` command)."""
        self._due['pair'] = now
        self._waiting.add('pair')

    def refresh_devices(self, now: float) -> None:
        """Ask for the devices at once (e.g. after a revocation)."""
        self._due['devices'] = now

    def due(self, now: float, wall: float) -> list[str]:
        """Return the requests (subjects) to send now; call asked() for each one sent."""
        if self.code is not None and not self.valid(wall) and self._due['pair'] == NEVER:
            self._due['pair'] = now  # expired: a new one
        return [subject for subject, at in self._due.items() if now >= at]

    def asked(self, subject: str) -> None:
        """A request for subject is on its way: not again until its answer."""
        self._due[subject] = NEVER

    def settled(self) -> bool:
        """Tell whether every answer the view waited for since it was shown came."""
        return not self._waiting

    # -- answers -------------------------------------------------------------------------
    def on_code(self, result: dict, now: float, wall: float) -> bool:
        """Take a ``pair`` outcome; return True when it brought a new code."""
        self._waiting.discard('pair')
        body = result.get('body')
        if result.get('ok'):
            problem = _check_code(body)
            if problem is None:
                self.code = {k: body[k] for k in ('url', 'code', 'expires', 'ttl')}
                self._received = wall
                self._due['pair'] = NEVER
                self.error = ''
                try:
                    self.qr = qr_matrix(body['url'])
                except Exception as exc:  # noqa: BLE001 - no qrcode package: the code still shows
                    self.qr = None
                    self.error = f'no QR code ({exc}); enter the code instead'
                return True
            self.error = f'the service sent no usable pairing code ({problem})'
        else:
            self.error = _unavailable(result)
        self._due['pair'] = now + RETRY
        return False

    def on_devices(self, result: dict, now: float) -> bool:
        """Take a ``devices`` outcome; return True when the list changed."""
        self._waiting.discard('devices')
        body = result.get('body')
        devices = body.get('devices') if isinstance(body, dict) else None
        if not result.get('ok') or not isinstance(devices, list):
            self.devices_error = _unavailable(result) if not result.get('ok') else \
                'the service sent no device list'
            self._due['devices'] = now + RETRY
            return False
        devices = [d for d in devices if isinstance(d, dict) and 'id' in d]
        self._due['devices'] = now + DEVICES_PERIOD
        self.devices_error = ''
        before = None if self.devices is None else {d['id'] for d in self.devices}
        self.paired = [d for d in devices if before is not None and d['id'] not in before]
        if any((d.get('paired') or 0) >= self._received - 1 for d in self.paired) and self.code:
            self._due['pair'] = now  # a phone used the code: it works once, so a new one
        changed = devices != self.devices
        self.devices = devices
        return changed


def _check_code(body: Any) -> str | None:
    """Return what is wrong with a ``pair`` answer, or None."""
    if not isinstance(body, dict):
        return 'not an object'
    if not isinstance(body.get('url'), str) or not body['url']:
        return 'no url'
    if not isinstance(body.get('code'), str) or not body['code']:
        return 'no code'
    for key in ('expires', 'ttl'):
        if not isinstance(body.get(key), (int, float)) or isinstance(body.get(key), bool):
            return f'no {key}'
    return None


def _unavailable(result: dict) -> str:
    """Why a pairing request failed, in words."""
    if not result.get('reachable', True):
        return 'the service does not answer'
    return str(result.get('error'))
