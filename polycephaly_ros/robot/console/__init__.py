"""The system service's mobile web console, paired by the touchscreen's QR code.

One concept a module:

* :mod:`.head` -- :class:`ConsoleHead`, the service's thread head that owns the console;
* :mod:`.pairing` -- one-time codes, paired devices (hashed tokens, 0600 file), revocation,
  the limit on wrong codes;
* :mod:`.web` -- the aiohttp server in an asyncio thread of its own: pages, API, live status;
* :mod:`.page` -- the two pages (console and pairing), inline HTML, CSS and script;
* :mod:`.actions` -- what a paired phone may ask, checked at the edge, and the answers in words;
* :mod:`.tls` -- the TLS context: none, files, or a self-signed certificate made once.

aiohttp is imported by :mod:`.web` only, when the console starts.
"""

from __future__ import annotations

from .head import ConsoleHead, console_url, state_dir

__all__ = ['ConsoleHead', 'console_url', 'state_dir']
