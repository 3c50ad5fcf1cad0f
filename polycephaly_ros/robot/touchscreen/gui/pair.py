"""The pair page: the QR code of the service's pairing URL, its code and countdown, and the
paired devices, each with a Revoke button.

The main head asks the service for a code while this page is shown and again when it expires
(:mod:`..pairing`); the page draws what the model holds: the QR code (white, with its
quiet zone, as large as the page allows), the code as text for typing it, the time it still
lives, the URL, and "pairing unavailable: <reason>" when the service gives no code. Revoking a
device is confirmed in the window first. Built and refreshed in the window's thread.
"""

from __future__ import annotations

import time
import tkinter as tk
from tkinter import ttk
from typing import Any

from ..view_text import device_text
from .widgets import FitLabel, RowPager


class DeviceRow:
    """One paired device and its Revoke button."""

    def __init__(self, parent: tk.Misc, page: 'PairPage') -> None:
        theme = page.theme
        self.device: dict = {}
        self.frame = ttk.Frame(parent, style='Card.TFrame', padding=(theme.px(6), theme.px(2)))
        self.frame.columnconfigure(0, weight=1)
        self.text = FitLabel(self.frame, theme, 'small', lines=2, style='Small.Card.TLabel',
                             hint=200)
        self.text.grid(row=0, column=0, sticky='nsew')
        self.revoke = ttk.Button(self.frame, text='Revoke',
                                 command=lambda: page.revoke(self.device))
        self.revoke.grid(row=0, column=1, sticky='e', padx=(theme.px(6), 0))

    def show(self, item: tuple[dict, float]) -> None:
        """Show one device: (the device, the wall-clock time now)."""
        self.device, wall = item
        name, _, rest = device_text(self.device, wall).partition(': ')
        self.text.set(f'{name}\n{rest}')


class PairPage(ttk.Frame):
    """The QR code, the code, and the paired devices."""

    def __init__(self, parent: ttk.Frame, window: Any) -> None:
        super().__init__(parent)
        self.window = window
        self.theme = theme = window.theme
        self.columnconfigure(1, weight=1)
        self.rowconfigure(0, weight=1)
        self.canvas = tk.Canvas(self, width=200, height=200, background='white',
                                highlightthickness=0)
        self.canvas.grid(row=0, column=0, sticky='nw')
        self._drawn: tuple = ()
        info = ttk.Frame(self)
        info.grid(row=0, column=1, sticky='nsew', padx=(theme.px(10), 0))
        info.columnconfigure(0, weight=1)
        info.rowconfigure(6, weight=1)
        ttk.Label(info, text='Pair a phone', style='Title.TLabel').grid(row=0, column=0,
                                                                        sticky='w')
        self.code = ttk.Label(info, text='\u2014', style='Code.TLabel')
        self.code.grid(row=1, column=0, sticky='w')
        self.state = FitLabel(info, theme, 'body', lines=2, hint=300)
        self.state.grid(row=2, column=0, sticky='ew')
        self.url = FitLabel(info, theme, 'small', lines=2, style='Small.TLabel', hint=300)
        self.url.grid(row=3, column=0, sticky='ew')
        self.new = ttk.Button(info, text='New code', command=self.new_code)
        self.new.grid(row=4, column=0, sticky='w', pady=(theme.px(2), theme.px(4)))
        ttk.Label(info, text='Paired devices', style='Title.TLabel').grid(row=5, column=0,
                                                                          sticky='w')
        self.devices = RowPager(info, theme, lambda: theme.target + 2 * theme.px(2) + 4,
                                lambda p: DeviceRow(p, self), empty='No paired devices.')
        self.devices.grid(row=6, column=0, sticky='nsew')
        self.bind('<Configure>', lambda _e: self._size_code(), add=True)

    def _size_code(self) -> None:
        """Make the QR code as large as the page allows (a square)."""
        side = max(100, min(self.winfo_height(), int(self.winfo_width() * 0.46)))
        if int(str(self.canvas.cget('width'))) != side:
            self.canvas.configure(width=side, height=side)
            self._drawn = ()
            self._draw(self.window.head.pairing)

    def _draw(self, pairing: Any) -> None:
        """Draw the QR code of the current URL (or why there is none), when it changed."""
        side = int(str(self.canvas.cget('width')))
        matrix = pairing.qr if pairing.code else None
        key = (side, id(matrix), pairing.error if matrix is None else '')
        if key == self._drawn:
            return
        self._drawn = key
        canvas = self.canvas
        canvas.delete('all')
        if not matrix:
            text = ('Pairing unavailable' if pairing.error else 'Asking the service for a '
                    'pairing code ...')
            canvas.create_text(side // 2, side // 2, text=text, width=side - 20,
                               font=self.theme.fonts['body'], justify='center')
            return
        cell = max(1, side // len(matrix))
        offset = (side - cell * len(matrix)) // 2
        for y, row in enumerate(matrix):
            for x, dark in enumerate(row):
                if dark:
                    canvas.create_rectangle(offset + x * cell, offset + y * cell,
                                            offset + (x + 1) * cell, offset + (y + 1) * cell,
                                            fill='black', width=0)

    def new_code(self) -> None:
        """Ask the service for a new code now."""
        self.window.head.pairing.renew(time.monotonic())
        self.window.say('New pairing code: waiting for the service ...')

    def revoke(self, device: dict) -> None:
        """Revoke a paired device, once confirmed."""
        name = device.get('name') or device['id']

        def go() -> None:
            self.window.say(f'Revoke {name}: waiting for the service ...')
            self.window.head.admin('revoke_device', {'id': device['id']})

        self.window.confirm(f'Revoke "{name}"? That phone can no longer reach the robot until '
                            f'it is paired again.', f'Revoke {name}', go)

    def refresh(self, head: Any, wall: float) -> None:
        """Show the current code, its countdown and the devices."""
        pairing = head.pairing
        self._draw(pairing)
        code = pairing.code
        if code and pairing.valid(wall):
            left = int(pairing.remaining(wall) or 0)
            self.code.configure(text=code['code'])
            self.state.set(f'Scan the code, or open the address below and enter the code. '
                           f'Expires in {left // 60}:{left % 60:02d}.', style='TLabel')
            self.url.set(code['url'])
        else:
            self.code.configure(text='\u2014')
            self.state.set(f'Pairing unavailable: {pairing.error}' if pairing.error else
                           'Asking the service for a pairing code ...',
                           style='Stale.TLabel' if pairing.error else 'TLabel')
            self.url.set('')
        if pairing.devices_error:
            self.devices.empty.set(f'Devices unknown: {pairing.devices_error}')
        else:
            self.devices.empty.set('No paired devices.' if pairing.devices is not None
                                   else 'Asking the service for the devices ...')
        self.devices.set_items([(d, wall) for d in pairing.devices or []])
