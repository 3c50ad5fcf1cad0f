"""The touchscreen's Tk window (a view of :mod:`..main`), one module per part.

:mod:`.window` holds :class:`TkView` (the window, the banner, the navigation, the message area
and the in-window confirmations), :mod:`.status`, :mod:`.diagnostics`, :mod:`.admin` and
:mod:`.pair` one page each, :mod:`.widgets` the building blocks, :mod:`.theme` the look scaled to
the window's size and :mod:`.layout` the geometry report the tests read. Tk is imported only
when this package is: the headless touchscreen never needs it.
"""

from .theme import BAD_COLOUR, OK_COLOUR, STALE_COLOUR, UNKNOWN_COLOUR
from .window import TkView

__all__ = ['TkView', 'OK_COLOUR', 'BAD_COLOUR', 'STALE_COLOUR', 'UNKNOWN_COLOUR']
