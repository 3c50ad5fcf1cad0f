"""The touchscreen's Tk window: banner, navigation, one page per view, messages, confirmations.

Layout (designed at 800 x 480, scaled to the window by :mod:`.theme`): a banner across the top
(the service reachable or not, two lines at most, wrapped, never clipped); the navigation down
the left (one touch-sized button per view; keys 1-4 too); the current page; under it a message
area of fixed height, where requests and their outcomes are said in words, so nothing moves
when one is shown. A disruptive action (stopping or restarting a head, scheduling maintenance,
revoking a device) is confirmed inside the window, on a panel laid over the page (no Toplevel:
a kiosk has no window manager). With ``window.fullscreen`` the window is a kiosk: no decoration
and the whole screen, by override-redirect, which needs no window manager (Escape leaves it).

It lives in the main head's thread: the head's life() calls :meth:`TkView.pump`, which runs
``root.update()`` (Tk's events, then back to the head's mail). Buttons only queue requests
(TouchscreenMain.admin), so no tap ever waits for the service. It is one of the two views the
main head drives (the protocol is described in :mod:`..headless`); it knows the head only
through that head's attributes, and imports nothing of :mod:`..main`.

Keys: 1-4 switch views (status, diagnostics, admin, pair), F5 asks for everything now,
Escape closes a confirmation or leaves the kiosk.
"""

from __future__ import annotations

import time
import tkinter as tk
from tkinter import ttk
from typing import Any, Callable

from ..screen_text import VIEWS, age_text, banner_summary
from .admin import AdminPage
from .diagnostics import DiagnosticsPage
from .layout import describe
from .pair import PairPage
from .status import StatusPage
from .theme import Theme
from .widgets import FitLabel

TICK = 1.0  # s between redraws of what ages (stale data, the pairing code's countdown)


class TkView:
    """The window; raises (TclError) when there is no display."""

    def __init__(self, head: Any) -> None:
        self.head = head
        settings = head.section['window']
        self.closed = False
        root = self.root = tk.Tk(className='polycephaly-touchscreen')
        root.title(settings['title'])
        self.windowed = (settings['width'], settings['height'])
        self.kiosk = bool(settings['fullscreen'])
        size = ((root.winfo_screenwidth(), root.winfo_screenheight()) if self.kiosk
                else self.windowed)
        if self.kiosk:
            root.overrideredirect(True)
        root.geometry(f'{size[0]}x{size[1]}+0+0')
        root.protocol('WM_DELETE_WINDOW', self._on_close)
        self.theme = Theme(root, *size)
        root.configure(background='#f3f3f3')
        self._build(root)
        self.current: str | None = None
        self._announce: str | None = None
        self._layout_wanted = False
        self._message_serial = -1
        self._tick = 0.0
        root.bind('<Configure>', self._on_resize, add=True)
        for index, name in enumerate(VIEWS, 1):
            root.bind(str(index), lambda _e, n=name: head.show(n))
        root.bind('<F5>', lambda _e: self._refresh_now())
        root.bind('<Escape>', lambda _e: self._escape())
        self.show('status')
        root.update()
        if self.kiosk:
            root.focus_force()

    def _build(self, root: tk.Tk) -> None:
        """Lay out the banner, the navigation, the pages and the message area."""
        theme = self.theme
        root.columnconfigure(1, weight=1)
        root.rowconfigure(1, weight=1)
        self.banner = ttk.Frame(root, style='Unknown.Banner.TFrame',
                                padding=(theme.px(12), theme.px(5)))
        self.banner.grid(row=0, column=0, columnspan=2, sticky='ew')
        self.banner_text = FitLabel(self.banner, theme, 'banner', lines=2,
                                    text='Connecting to the service ...',
                                    style='Unknown.Banner.TLabel', hint=760)
        self.banner_text.pack(fill='x')
        nav = ttk.Frame(root, padding=theme.px(4))
        nav.grid(row=1, column=0, sticky='ns')
        self.nav_buttons = {}
        for name in VIEWS:
            button = ttk.Button(nav, text=name.title(), style='Nav.TButton',
                                command=lambda n=name: self.head.show(n))
            button.pack(side='top', fill='x', pady=theme.px(2))
            self.nav_buttons[name] = button
        content = ttk.Frame(root, padding=(0, theme.px(4), theme.px(4), theme.px(4)))
        content.grid(row=1, column=1, sticky='nsew')
        content.columnconfigure(0, weight=1)
        content.rowconfigure(0, weight=1)
        self.pages_area = ttk.Frame(content)
        self.pages_area.grid(row=0, column=0, sticky='nsew')
        bar = ttk.Frame(content, style='Message.TFrame', padding=(theme.px(8), theme.px(4)))
        bar.grid(row=1, column=0, sticky='ew', pady=(theme.px(4), 0))
        self.message = FitLabel(bar, theme, 'body', lines=2, style='Message.TLabel', hint=600)
        self.message.pack(fill='x')
        self.pages = {'status': StatusPage(self.pages_area, self),
                      'diagnostics': DiagnosticsPage(self.pages_area, self),
                      'admin': AdminPage(self.pages_area, self),
                      'pair': PairPage(self.pages_area, self)}
        self._build_confirm()

    def _build_confirm(self) -> None:
        """Build the confirmation panel (placed over the page when asked)."""
        theme = self.theme
        panel = self.confirm_panel = ttk.Frame(self.pages_area, style='Confirm.TFrame',
                                               padding=theme.px(16))
        self.confirm_text = FitLabel(panel, theme, 'title', style='Confirm.TLabel', hint=500)
        self.confirm_text.pack(side='top', fill='x')
        row = ttk.Frame(panel, style='Confirm.TFrame')
        row.pack(side='bottom', fill='x')
        row.columnconfigure((0, 1), weight=1, uniform='confirm')
        self.confirm_no = ttk.Button(row, text='Cancel', command=self.cancel_confirm)
        self.confirm_no.grid(row=0, column=0, sticky='ew', padx=(0, theme.px(8)))
        self.confirm_yes = ttk.Button(row, text='OK', style='Danger.TButton')
        self.confirm_yes.grid(row=0, column=1, sticky='ew')

    # -- what pages use -----------------------------------------------------------------
    def confirm(self, question: str, action: str, then: Callable[[], None]) -> None:
        """Ask question on a panel over the page; run then when action is tapped."""
        def yes() -> None:
            self.cancel_confirm()
            then()

        self.confirm_text.set(question)
        self.confirm_yes.configure(text=action, command=yes)
        self.confirm_panel.place(in_=self.pages_area, x=0, y=0, relwidth=1, relheight=1)
        self.confirm_panel.lift()

    def cancel_confirm(self) -> None:
        """Take the confirmation panel away, doing nothing."""
        self.confirm_panel.place_forget()

    def say(self, text: str, error: bool = False) -> None:
        """Show text in the message area now."""
        self.head.say(text, error)
        self._show_message()

    def stale(self) -> bool:
        """Tell whether the data on screen is the last known (the service does not answer)."""
        return self.head.reachable is False

    # -- events ---------------------------------------------------------------------------
    def _on_resize(self, event: tk.Event) -> None:
        """Rescale fonts and styles when the window changed size."""
        if event.widget is self.root and self.theme.apply(event.width, event.height):
            self.refresh()

    def _escape(self) -> None:
        """Close a confirmation, else leave the kiosk for the configured window."""
        if self.confirm_panel.winfo_manager():
            self.cancel_confirm()
        elif self.kiosk:
            self.kiosk = False
            self.root.overrideredirect(False)
            self.root.geometry(f'{self.windowed[0]}x{self.windowed[1]}+0+0')

    def _refresh_now(self) -> None:
        """Ask for the status and diagnostics at once (F5)."""
        self.head.due = {k: 0.0 for k in self.head.due}

    def _on_close(self) -> None:
        """Mark the window closed (the application then stops)."""
        self.closed = True

    # -- the view protocol -----------------------------------------------------------------
    def show(self, name: str) -> None:
        """Put view name on screen; the head hears of it (shown) once it is drawn."""
        self.cancel_confirm()
        if self.current is not None:
            self.pages[self.current].pack_forget()
        self.pages[name].pack(fill='both', expand=True)
        self.current = name
        self._announce = name
        for n, button in self.nav_buttons.items():
            button.configure(style='NavOn.TButton' if n == name else 'Nav.TButton')
        self.refresh()

    def refresh(self) -> None:
        """Show the head's model."""
        if self.closed:
            return
        head = self.head
        wall = time.time()
        if head.reachable:
            self.banner_text.set(f'\u25cf Service reachable ({head.section["transport"]})\n'
                                 f'{banner_summary(head.status or {}, head.link)}',
                                 style='Ok.Banner.TLabel')
            self.banner.configure(style='Ok.Banner.TFrame')
        elif head.reachable is False:
            last = (f'last answer {age_text(wall - head.status_at)} ago'
                    if head.status_at else 'no answer yet')
            self.banner_text.set(f'\u25cf Service unreachable, retrying ({last}): '
                                 f'{head.unreachable_reason}', style='Bad.Banner.TLabel')
            self.banner.configure(style='Bad.Banner.TFrame')
        for page in self.pages.values():
            page.refresh(head, wall)
        self._show_message()

    def _show_message(self) -> None:
        """Show the head's message in the message area, when it changed."""
        message = self.head.message
        if message['serial'] != self._message_serial:
            self._message_serial = message['serial']
            self.message.set(message['text'] or 'Requests and their outcomes are shown here.',
                             style='Error.Message.TLabel' if message['error'] else
                             'Message.TLabel' if message['text'] else 'Hint.Message.TLabel')

    def report_layout(self) -> None:
        """Report every widget's geometry (the layout event) once the window is drawn next."""
        self._layout_wanted = True

    def pump(self) -> None:
        """Run Tk's pending events and redraws, then announce what is now drawn."""
        if self.closed:
            return
        now = time.monotonic()
        if now >= self._tick:
            self._tick = now + TICK
            self.refresh()
        try:
            self.root.update()
        except tk.TclError:
            self.closed = True
            return
        if self._announce:  # drawn now: say so (tests take screenshots on this event)
            name, self._announce = self._announce, None
            self.head.shown(name)
        if self._layout_wanted:
            self._layout_wanted = False
            data = describe(self.root)
            self.head.events.emit('layout', f'layout of the {self.current} view: '
                                  f'{len(data["widgets"])} widgets',
                                  view=self.current, kiosk=self.kiosk,
                                  confirming=bool(self.confirm_panel.winfo_manager()),
                                  scale=self.theme.scale, **data)

    def close(self) -> None:
        """Destroy the window."""
        self.closed = True
        try:
            self.root.destroy()
        except tk.TclError:
            pass
