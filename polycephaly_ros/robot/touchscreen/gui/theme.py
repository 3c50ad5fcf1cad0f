"""The touchscreen window's look: colours, fonts and ttk styles, scaled to the window's size.

Sizes are designed for 800 x 480 and scaled by ``min(width / 800, height / 480)``, so a larger
screen (1024 x 600, ...) gets larger text and targets in the same layout. Fonts are named Tk
fonts given in pixels (negative sizes), independent of the screen's DPI; :meth:`Theme.apply`
re-sizes them in place, and every widget using them follows. Touch targets (buttons, list rows)
are never smaller than :data:`TOUCH` pixels, whatever the scale.

Threading: Tk's objects; used only in the thread that runs the window (the main head's).
"""

from __future__ import annotations

import math
import tkinter as tk
from tkinter import font as tkfont
from tkinter import ttk

OK_COLOUR = '#1b7f3b'
BAD_COLOUR = '#b3261e'
WARN_COLOUR = '#a86b00'
UNKNOWN_COLOUR = '#5f6368'
STALE_COLOUR = '#8a8a8a'
TEXT_COLOUR = '#1f1f1f'
BACKGROUND = '#f3f3f3'
SELECTED = '#c9dcf5'
#: The smallest touch target (button or list row), in pixels.
TOUCH = 48
#: The size the layout is designed for.
BASE_WIDTH, BASE_HEIGHT = 800, 480
FAMILY = 'DejaVu Sans'
#: Named fonts: name -> (pixels at scale 1, bold).
FONTS = {'body': (16, False), 'small': (14, False), 'title': (18, True), 'big': (26, True),
         'banner': (16, True), 'button': (16, False), 'heading': (14, True)}


class Theme:
    """The fonts and styles of one window."""

    def __init__(self, root: tk.Tk, width: int, height: int) -> None:
        self.root = root
        self.fonts = {name: tkfont.Font(root, name=f'ts_{name}', family=FAMILY,
                                        weight='bold' if bold else 'normal')
                      for name, (_size, bold) in FONTS.items()}
        self.style = ttk.Style(root)
        self.style.theme_use('clam')
        self.scale = 0.0
        self.apply(width, height)

    def px(self, value: float) -> int:
        """Return value pixels at scale 1 scaled to this window."""
        return max(1, round(value * self.scale))

    @property
    def target(self) -> int:
        """The height of a touch target (button, list row) in pixels."""
        return max(TOUCH, self.px(52))

    def line(self, font: str) -> int:
        """Return the height of one line of text in the named font."""
        return self.fonts[font].metrics('linespace')

    def apply(self, width: int, height: int) -> bool:
        """Scale fonts and styles to a window of width x height; tell whether anything changed."""
        scale = round(min(width / BASE_WIDTH, height / BASE_HEIGHT), 3)
        if scale == self.scale:
            return False
        self.scale = scale
        for name, (size, _bold) in FONTS.items():
            self.fonts[name].configure(size=-self.px(size))
        self._styles()
        return True

    def _styles(self) -> None:
        """Configure the ttk styles for the current fonts and scale."""
        s = self.style
        f = self.fonts
        pad = self.px(6)
        # A button's height: its text line, twice its vertical padding and clam's border and
        # focus ring (2 px each side): at least a touch target.
        vpad = max(2, math.ceil((self.target - self.line('button')) / 2) - 3)
        s.configure('.', font=f['body'], background=BACKGROUND, foreground=TEXT_COLOUR)
        s.configure('TFrame', background=BACKGROUND)
        s.configure('TLabel', background=BACKGROUND, foreground=TEXT_COLOUR, font=f['body'])
        s.configure('TButton', font=f['button'], padding=(self.px(10), vpad), width=0)
        s.configure('Danger.TButton', foreground='white', background=BAD_COLOUR)
        s.map('Danger.TButton', background=[('active', '#8c1d18'), ('pressed', '#8c1d18')])
        s.configure('Nav.TButton', anchor='w')
        s.configure('NavOn.TButton', anchor='w', background=SELECTED, bordercolor='#3b6fb6',
                    lightcolor=SELECTED, darkcolor=SELECTED)
        s.map('NavOn.TButton', background=[('active', SELECTED)])
        s.configure('Treeview', font=f['body'], rowheight=self.target, background='white',
                    fieldbackground='white')
        s.configure('Treeview.Heading', font=f['heading'], padding=(pad, self.px(3)))
        s.map('Treeview', background=[('selected', SELECTED)],
              foreground=[('selected', TEXT_COLOUR)])
        for name, colour in (('Ok', OK_COLOUR), ('Bad', BAD_COLOUR), ('Unknown', UNKNOWN_COLOUR)):
            s.configure(f'{name}.Banner.TFrame', background=colour)
            s.configure(f'{name}.Banner.TLabel', background=colour, foreground='white',
                        font=f['banner'])
        for name, colour in (('Ok', OK_COLOUR), ('Warn', WARN_COLOUR), ('Bad', BAD_COLOUR),
                             ('Stale', STALE_COLOUR)):
            s.configure(f'{name}.Level.TLabel', foreground=colour, font=f['big'])
        s.configure('Title.TLabel', font=f['title'])
        s.configure('Small.TLabel', font=f['small'])
        s.configure('Stale.TLabel', foreground=STALE_COLOUR)
        s.configure('Code.TLabel', font=f['big'])
        s.configure('Message.TFrame', background='white')
        s.configure('Message.TLabel', background='white', foreground=TEXT_COLOUR)
        s.configure('Error.Message.TLabel', background='white', foreground=BAD_COLOUR)
        s.configure('Hint.Message.TLabel', background='white', foreground=STALE_COLOUR)
        s.configure('Confirm.TFrame', background='white', relief='solid', borderwidth=2)
        s.configure('Confirm.TLabel', background='white', font=f['title'])
        s.configure('Card.TFrame', background='white', relief='solid', borderwidth=1)
        s.configure('Card.TLabel', background='white')
        s.configure('Title.Card.TLabel', background='white', font=f['title'])
        s.configure('Small.Card.TLabel', background='white', font=f['small'])
        s.configure('Stale.Card.TLabel', background='white', font=f['small'],
                    foreground=STALE_COLOUR)
        s.configure('Inner.Card.TFrame', background='white', relief='flat', borderwidth=0)
        for name, colour in (('Ok', OK_COLOUR), ('Warn', WARN_COLOUR), ('Bad', BAD_COLOUR),
                             ('Stale', STALE_COLOUR)):
            s.configure(f'{name}.Horizontal.TProgressbar', thickness=self.px(22),
                        background=colour, troughcolor='white', lightcolor=colour,
                        darkcolor=colour, bordercolor='#b0b0b0')
