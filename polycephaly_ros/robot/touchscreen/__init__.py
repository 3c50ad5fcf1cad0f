"""The touchscreen client: the application, its views and its words.

One concept a module:

* :mod:`.main` -- :class:`TouchscreenApplication` and its main head (the model, the requests,
  the view it drives), and the command line (``python -m polycephaly_ros.robot.touchscreen``,
  ``polycephaly-touchscreen``);
* :mod:`.client_head` -- the thread heads that carry requests to the service and wait;
* :mod:`.commands` -- commands typed on stdin (and the window's own);
* :mod:`.pairing` -- the pairing code and paired devices the pair view shows;
* :mod:`.gui` -- the Tk window (a package: one module a view); :mod:`.headless` -- the view
  without a display;
* :mod:`.screen_text`, :mod:`.view_text` -- the words: one-line texts, a view as text;
* :mod:`.events` -- what it reports on stdout (text or JSON lines); :mod:`.qr` -- QR codes.

Tk is imported by :mod:`.gui` only, when a window opens.
"""

from __future__ import annotations

from .main import TouchscreenApplication, TouchscreenMain, cli_main, main

__all__ = ['TouchscreenApplication', 'TouchscreenMain', 'cli_main', 'main']
