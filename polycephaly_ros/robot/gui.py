"""The touchscreen's Tk window: status, diagnostics, admin and pairing views.

It lives in the main head's thread: the head's life() calls :meth:`TkView.pump`, which runs
``root.update()`` (Tk's events, then back to the head's mail). Buttons only queue requests
(see TouchscreenMain.request), so no click ever waits for the service. It is one of the two
views the main head drives (the protocol is described in :mod:`.headless`); it knows the head
only through that head's attributes, and imports nothing of :mod:`.touchscreen`.

Keys: 1-4 switch views (status, diagnostics, admin, pair), F5 asks for everything now,
Escape leaves full screen.
"""

from __future__ import annotations

import json
import time
import tkinter as tk
from tkinter import ttk
from typing import Any

from .screen_text import VIEWS, diagnostics_text

OK_COLOUR = '#1b7f3b'
BAD_COLOUR = '#b3261e'
UNKNOWN_COLOUR = '#6b6b6b'
FONT = ('DejaVu Sans', 12)
BIG = ('DejaVu Sans', 16, 'bold')


class TkView:
    """The window; raises (TclError) when there is no display."""

    def __init__(self, head: Any) -> None:
        self.head = head
        settings = head.section['window']
        self.closed = False
        root = self.root = tk.Tk(className='polycephaly-touchscreen')
        root.title(settings['title'])
        root.geometry(f'{settings["width"]}x{settings["height"]}+0+0')
        if settings['fullscreen']:
            root.attributes('-fullscreen', True)
            root.bind('<Escape>', lambda _e: root.attributes('-fullscreen', False))
        root.protocol('WM_DELETE_WINDOW', self._on_close)
        root.option_add('*Font', FONT)
        style = ttk.Style(root)
        style.configure('TButton', font=FONT, padding=8)
        style.configure('Treeview', font=FONT, rowheight=24)

        self.banner = tk.Label(root, text='connecting to the service ...', font=BIG, fg='white',
                               bg=UNKNOWN_COLOUR, anchor='w', padx=12, pady=8)
        self.banner.pack(side='top', fill='x')
        nav = tk.Frame(root)
        nav.pack(side='left', fill='y', padx=4, pady=4)
        self.nav_buttons = {}
        for index, name in enumerate(VIEWS, 1):
            b = ttk.Button(nav, text=f'{index} {name.title()}',
                           command=lambda n=name: head.show(n))
            b.pack(side='top', fill='x', pady=2)
            self.nav_buttons[name] = b
            root.bind(str(index), lambda _e, n=name: head.show(n))
        root.bind('<F5>', lambda _e: self._refresh_now())
        body = tk.Frame(root)
        body.pack(side='left', fill='both', expand=True, padx=4, pady=4)
        self.frames = {name: tk.Frame(body) for name in VIEWS}
        self._build_status(self.frames['status'])
        self._build_diagnostics(self.frames['diagnostics'])
        self._build_admin(self.frames['admin'])
        self._build_pair(self.frames['pair'])
        self.current = None
        self._announce: str | None = None
        self._shown_admin = None
        self.show('status')
        root.update()

    # -- views ---------------------------------------------------------------------------
    def _build_status(self, f: tk.Frame) -> None:
        self.status_text = tk.Label(f, text='no status yet', justify='left', anchor='nw',
                                    wraplength=620)
        self.status_text.pack(side='top', fill='x')
        self.heads_tree = ttk.Treeview(f, columns=('mode', 'state', 'pid'), height=8)
        self.heads_tree.heading('#0', text='head')
        for col, width in (('mode', 90), ('state', 110), ('pid', 90)):
            self.heads_tree.heading(col, text=col)
            self.heads_tree.column(col, width=width)
        self.heads_tree.pack(side='top', fill='both', expand=True, pady=6)

    def _build_diagnostics(self, f: tk.Frame) -> None:
        self.level_label = tk.Label(f, text='no diagnostics yet', font=BIG, anchor='w')
        self.level_label.pack(side='top', fill='x')
        self.bars: dict[str, tuple[ttk.Progressbar, tk.Label]] = {}
        self.bars_frame = tk.Frame(f)
        self.bars_frame.pack(side='top', fill='x', pady=6)
        self.diag_text = tk.Label(f, text='', justify='left', anchor='nw', wraplength=620)
        self.diag_text.pack(side='top', fill='x')

    def _bar(self, key: str, label: str, value: float) -> None:
        if key not in self.bars:
            row = tk.Frame(self.bars_frame)
            row.pack(side='top', fill='x', pady=2)
            tk.Label(row, text=label, width=14, anchor='w').pack(side='left')
            bar = ttk.Progressbar(row, length=360, maximum=100)
            bar.pack(side='left', padx=6)
            text = tk.Label(row, width=8, anchor='e')
            text.pack(side='left')
            self.bars[key] = (bar, text)
        bar, text = self.bars[key]
        bar['value'] = value
        text['text'] = f'{value:.0f} %'

    def _build_admin(self, f: tk.Frame) -> None:
        self.admin_result = tk.Label(f, text='Pick a head or an action, then a button.',
                                     anchor='w', justify='left', wraplength=620)
        self.admin_result.pack(side='bottom', fill='x', pady=(4, 0))
        left = tk.Frame(f)
        left.pack(side='left', fill='both', expand=True)
        tk.Label(left, text='Heads', font=BIG, anchor='w').pack(side='top', fill='x')
        self.heads_list = tk.Listbox(left, height=6, exportselection=False)
        self.heads_list.pack(side='top', fill='both', expand=True)
        row = tk.Frame(left)
        row.pack(side='top', fill='x', pady=4)
        for verb in ('start', 'stop', 'restart'):
            ttk.Button(row, text=verb.title(),
                       command=lambda v=verb: self._head_action(v)).pack(side='left', padx=2)
        right = tk.Frame(f)
        right.pack(side='left', fill='both', expand=True, padx=(8, 0))
        tk.Label(right, text='Maintenance', font=BIG, anchor='w').pack(side='top', fill='x')
        self.actions_list = tk.Listbox(right, height=6, exportselection=False)
        self.actions_list.pack(side='top', fill='both', expand=True)
        row = tk.Frame(right)
        row.pack(side='top', fill='x', pady=4)
        ttk.Button(row, text='Schedule', command=self._schedule).pack(side='left', padx=2)
        ttk.Button(row, text='Idle',
                   command=lambda: self.head.admin('robot_idle', {'idle': True})).pack(
                       side='left', padx=2)
        ttk.Button(row, text='Busy',
                   command=lambda: self.head.admin('robot_idle', {'idle': False})).pack(
                       side='left', padx=2)

    def _build_pair(self, f: tk.Frame) -> None:
        self.qr_canvas = tk.Canvas(f, width=300, height=300, bg='white', highlightthickness=0)
        self.qr_canvas.pack(side='top', pady=8)
        self.qr_label = tk.Label(f, text='', font=FONT)
        self.qr_label.pack(side='top')
        self._draw_qr()

    def _draw_qr(self) -> None:
        matrix = self.head.qr
        uri = self.head.section['qr_uri']
        canvas = self.qr_canvas
        canvas.delete('all')
        if not matrix:
            canvas.create_text(150, 150, text='no QR code\n(is the qrcode package installed?)')
        else:
            cell = max(1, 300 // len(matrix))
            offset = (300 - cell * len(matrix)) // 2
            for y, row in enumerate(matrix):
                for x, dark in enumerate(row):
                    if dark:
                        canvas.create_rectangle(offset + x * cell, offset + y * cell,
                                                offset + (x + 1) * cell, offset + (y + 1) * cell,
                                                fill='black', width=0)
        self.qr_label['text'] = f'Scan to pair: {uri}'

    # -- actions -------------------------------------------------------------------------
    def _selected(self, listbox: tk.Listbox) -> str | None:
        picked = listbox.curselection()
        return listbox.get(picked[0]).split()[0] if picked else None

    def _head_action(self, verb: str) -> None:
        name = self._selected(self.heads_list)
        if name is None:
            self._admin_message('pick a head first', error=True)
            return
        self._admin_message(f'{verb} {name}: waiting for the service ...')
        self.head.admin(f'{verb}_head', {'head': name})

    def _schedule(self) -> None:
        name = self._selected(self.actions_list)
        if name is None:
            self._admin_message('pick a maintenance action first', error=True)
            return
        self._admin_message(f'schedule {name}: waiting for the service ...')
        self.head.admin('schedule', {'action': name})

    def _refresh_now(self) -> None:
        self.head.due = {k: 0.0 for k in self.head.due}

    def _admin_message(self, text: str, error: bool = False) -> None:
        self.admin_result.configure(text=text, fg=BAD_COLOUR if error else 'black')

    def _on_close(self) -> None:
        self.closed = True

    # -- the view protocol -----------------------------------------------------------------
    def show(self, name: str) -> None:
        """Put view name on screen; the head hears of it (shown) once it is drawn."""
        if self.current is not None:
            self.frames[self.current].pack_forget()
        self.frames[name].pack(fill='both', expand=True)
        self.current = name
        self._announce = name
        for n, b in self.nav_buttons.items():
            b.state(['pressed'] if n == name else ['!pressed'])

    def refresh(self) -> None:
        """Show the head's model."""
        if self.closed:
            return
        head = self.head
        if head.reachable:
            self.banner.configure(text=f'\u25cf service reachable ({head.section["transport"]})',
                                  bg=OK_COLOUR)
        elif head.reachable is False:
            self.banner.configure(text=f'\u25cf service unreachable \u2014 retrying: '
                                       f'{head.unreachable_reason}'[:110], bg=BAD_COLOUR)
        status = head.status
        if status:
            link = head.link or {}
            lines = [f'Service pid {status.get("pid")} on {status.get("host")}, up '
                     f'{status.get("uptime", 0):.0f} s (as of {time.strftime("%H:%M:%S")})',
                     f'Link: {"UP" if link.get("up") else "DOWN" if link else "unknown"} '
                     f'{("- " + link["reason"]) if link.get("reason") else ""}']
            net = status.get('network') or {}
            route = net.get('default_route')
            lines.append(f'Default route: {route["gateway"]} via {route["interface"]}'
                         if route else 'Default route: none')
            upd = status.get('updates') or {}
            if upd:
                lines.append(f'Updates: {"dry run" if upd.get("dry_run") else "LIVE"}, window '
                             f'{upd.get("window")}, pending: {", ".join(upd["pending"]) or "none"}')
            self.status_text['text'] = '\n'.join(lines)
            tree = self.heads_tree
            tree.delete(*tree.get_children())
            names = []
            for h in status.get('heads', []):
                tree.insert('', 'end', text=h['name'], values=(h['mode'], h['state'], h['pid']))
                names.append(f'{h["name"]}  ({h["state"]})')
            self._fill(self.heads_list, names)
            self._fill(self.actions_list,
                       [f'{n}  {a.get("description", "")}'
                        for n, a in (upd.get('actions') or {}).items()])
        diag = head.diag
        if diag:
            colour = {'OK': OK_COLOUR, 'WARN': '#a86b00'}.get(diag.get('level'), BAD_COLOUR)
            self.level_label.configure(text=f'Health: {diag.get("level")}', fg=colour)
            self._bar('cpu', 'CPU', diag['cpu']['percent'])
            self._bar('memory', 'Memory', diag['memory']['percent'])
            for path, d in diag.get('disks', {}).items():
                self._bar(f'disk:{path}', f'Disk {path}', d['percent'])
            self.diag_text['text'] = diagnostics_text(diag)
        last = head.admin_results[-1] if head.admin_results else None
        if last is not None and last is not self._shown_admin:
            self._shown_admin = last
            if last['ok']:
                self._admin_message(f'{last["subject"]}: ok '
                                    f'{json.dumps(last.get("body"), default=str)[:200]}')
            else:
                self._admin_message(f'{last["subject"]}: no answer / refused: '
                                    f'{last.get("error")}', error=True)

    @staticmethod
    def _fill(listbox: tk.Listbox, items: list[str]) -> None:
        if list(listbox.get(0, 'end')) == items:
            return
        picked = listbox.curselection()
        listbox.delete(0, 'end')
        for item in items:
            listbox.insert('end', item)
        for index in picked:
            if index < len(items):
                listbox.selection_set(index)

    def pump(self) -> None:
        """Run Tk's pending events and redraws, then announce a view that is now drawn."""
        if self.closed:
            return
        try:
            self.root.update()
        except tk.TclError:
            self.closed = True
            return
        if self._announce:  # drawn now: say so (tests take screenshots on this event)
            name, self._announce = self._announce, None
            self.head.shown(name)

    def close(self) -> None:
        """Destroy the window."""
        self.closed = True
        try:
            self.root.destroy()
        except tk.TclError:
            pass
