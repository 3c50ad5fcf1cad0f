"""The touchscreen's window as a touch product, under a real Xvfb against a real service.

At 800 x 480 (a window) and 1024 x 600 (a kiosk: ``window.fullscreen`` filling a screen larger
than the configured window, without any window manager): every widget of every view lies inside
the window, no text is clipped (each label and button got at least the size it asked for, each
list column the width its texts need), every button and list row is at least 48 px; a tap on
Schedule asks for confirmation inside the window, the result is said in words in the message
area and no control moves; the pair view's QR code, read from a screenshot by zbarimg, is the
service's pairing URL with its code; once the service is killed, the data is shown stale (greyed,
"was running") under a red banner whose text fits.

``POLYCEPHALY_SCREENSHOTS=docs`` saves the 800 x 480 views as docs/touchscreen-<view>.png.
"""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from robot_support import Proc, Processes, procs, write_config  # noqa: F401 (fixture)
from screen_support import collect, decode_qr, need, screenshot, tap, xdotool, xvfb

TOUCH = 48
BUTTONS = ('TButton', 'Button', 'TRadiobutton')
TEXTS = ('TLabel', 'Label') + BUTTONS
VIEWS = ('status', 'diagnostics', 'admin', 'pair')
CODE_URL = re.compile(r'^https?://\S+\?code=[A-Z0-9]{4}-[A-Z0-9]{4}$')


def layout_problems(layout: dict, width: int, height: int) -> list[str]:
    """Return what in a layout report is outside the window, clipped or too small to touch."""
    window = layout['window']
    problems = [] if (window['width'], window['height']) == (width, height) else \
        [f'window {window["width"]}x{window["height"]}, not {width}x{height}']
    for w in layout['widgets']:
        name = f'{w["class"]} {w["path"]} {w.get("text", "")[:40]!r}'
        if w['x'] < 0 or w['y'] < 0 or w['x'] + w['width'] > width or \
                w['y'] + w['height'] > height:
            problems.append(f'{name} lies outside: {w["x"]},{w["y"]} {w["width"]}x{w["height"]}')
        if w['class'] in TEXTS and (w['reqwidth'] > w['width'] or w['reqheight'] > w['height']):
            problems.append(f'{name} is clipped: {w["width"]}x{w["height"]} < '
                            f'{w["reqwidth"]}x{w["reqheight"]}')
        if w['class'] in BUTTONS and min(w['width'], w['height']) < TOUCH:
            problems.append(f'{name} is too small to touch: {w["width"]}x{w["height"]}')
        for row in w.get('rows', []):
            if row['height'] < TOUCH or row['y'] + row['height'] > w['height']:
                problems.append(f'{name} row {row["id"]}: {row["height"]} px at {row["y"]}')
        for column in w.get('columns', []):
            if column['needed'] > column['width']:
                problems.append(f'{name} column {column["id"]} is {column["width"]} px, its '
                                f'texts need {column["needed"]}')
    return problems


def find(layout: dict, cls: str | tuple, text: str | None = None, under: str = '') -> list[dict]:
    """Return the widgets of a class (with that text, under a path) in a layout report."""
    classes = (cls,) if isinstance(cls, str) else cls
    return [w for w in layout['widgets'] if w['class'] in classes and w['path'].startswith(under)
            and (text is None or w.get('text') == text)]


class Screen:
    """The touchscreen process and its display, driven and checked as a finger would."""

    def __init__(self, proc: Proc, display: str, width: int, height: int, kiosk: bool) -> None:
        self.proc = proc
        self.display = display
        self.size = (width, height)
        self.kiosk = kiosk

    def layout(self) -> dict:
        """Ask for the window's layout report (made once all before it is drawn); check it."""
        self.proc.send_line('layout')
        layout = self.proc.event('layout')[1]
        assert layout['kiosk'] is self.kiosk
        problems = layout_problems(layout, *self.size)
        assert not problems, f'{layout["view"]} at {self.size}:\n' + '\n'.join(problems)
        return layout

    def layout_until(self, check: Callable[[dict], bool], what: str) -> dict:
        """Ask for layouts until one passes check, and return it.

        A tap reaches Tk through the X server, a command through stdin: either may come first.
        """
        for _ in range(50):
            layout = self.layout()
            if check(layout):
                return layout
        raise AssertionError(f'the window never showed {what}')

    def view(self, name: str) -> dict:
        """Show view name and return its view event."""
        self.proc.send_line(f'view {name}')
        return self.proc.event('view', where=lambda e: e['view'] == name)[1]

    def tap(self, widget: dict, layout: dict) -> None:
        """Tap a widget of layout."""
        tap(self.display, widget, layout['window'])

    def check_view(self, view: str, tmp_path: Path) -> Path:
        """Show view, check its layout and return its screenshot (the pair view's QR code too)."""
        if view == 'pair':  # (the code may come before the view is drawn, or after)
            self.proc.send_line('view pair')
            qr = collect(self.proc, view=lambda e: e['view'] == 'pair', qr=bool)['qr']
        else:
            self.view(view)
        layout = self.layout()
        assert layout['view'] == view
        shot = screenshot(self.display, tmp_path / f'touchscreen-{view}.png')
        if view == 'pair':
            self.check_qr(layout, shot, qr)
        return shot

    def check_qr(self, layout: dict, shot: Path, qr: dict) -> None:
        """Check that the QR code on screen reads as the service's pairing URL."""
        canvas = find(layout, 'Canvas')[0]
        box = (canvas['x'], canvas['y'], canvas['x'] + canvas['width'],
               canvas['y'] + canvas['height'])
        read = decode_qr(shot, box)
        assert read == [qr['url']], f'zbarimg read {read}, the service gave {qr["url"]}'
        assert CODE_URL.match(qr['url']) and qr['url'].endswith(qr['code'])
        assert any(qr['code'] == w.get('text') for w in layout['widgets'])

    def check_admin(self, docs: Path | None) -> None:
        """Schedule asks inside the window; the result is said in words; nothing moves."""
        proc = self.proc
        self.view('admin')
        before = self.layout()
        self.tap(card_buttons(before, 'reboot')['Schedule'], before)
        asking = self.layout_until(lambda lay: lay['confirming'], 'a confirmation')
        self.tap(find(asking, 'TButton', 'Schedule reboot')[0], asking)
        _, scheduled = proc.event('admin', where=lambda e: e['subject'] == 'schedule')
        assert scheduled['ok'] and scheduled['text'].startswith('Reboot scheduled: ')
        after = self.layout()
        message = [w for w in find(after, 'TLabel') if w.get('text') == scheduled['text']]
        assert message, f'the message area does not say {scheduled["text"]!r}'
        assert '{' not in scheduled['text'] and not after['confirming']
        assert not moved(before, after), 'controls moved when the result was shown'
        after = self.layout_until(  # once a status answer shows the action pending
            lambda lay: card_title(lay, 'reboot')['text'] == 'reboot: scheduled',
            'the reboot scheduled')
        assert not moved(before, after), 'controls moved when the action showed scheduled'
        if docs:
            self.document(docs / 'touchscreen-admin.png')
        self.tap(card_buttons(after, 'reboot')['Unschedule'], after)
        _, unscheduled = proc.event('admin', where=lambda e: e['subject'] == 'unschedule')
        assert unscheduled['text'] == 'Reboot unscheduled'

    def check_pairing_a_phone(self, docs: Path | None) -> None:
        """Pair a phone with the code on screen; revoke it on the screen.

        It is listed with a Revoke button and a new code comes (a code works once); Revoke,
        once confirmed, removes it.
        """
        proc = self.proc
        self.view('pair')
        layout = self.layout()
        url = next(w['text'] for w in find(layout, 'TLabel') if CODE_URL.match(
            w.get('text', '')))  # the URL as the screen shows it
        device = pair_a_phone(url, 'Test phone')
        _, listed = proc.event('devices', where=lambda e: len(e['devices']) == 1)
        assert listed['devices'][0]['id'] == device['id']
        fresh = collect(proc, qr=bool)['qr']
        assert fresh['url'] != url
        layout = self.layout()
        revoke = find(layout, 'TButton', 'Revoke')
        assert len(revoke) == 1 and any(w.get('text', '').startswith('Test phone (id ')
                                        for w in layout['widgets'])
        if docs:
            self.document(docs / 'touchscreen-pair.png')
        self.tap(revoke[0], layout)
        asking = self.layout_until(lambda lay: lay['confirming'], 'a confirmation')
        self.tap(find(asking, 'TButton', 'Revoke Test phone')[0], asking)
        _, revoked = proc.event('admin', where=lambda e: e['subject'] == 'revoke_device')
        assert revoked['ok'] and revoked['text'] == f'Device {device["id"]} revoked'
        proc.event('devices', where=lambda e: e['devices'] == [])
        assert not find(self.layout(), 'TButton', 'Revoke')

    def check_stale(self, service: Proc) -> None:
        """The service gone: a red banner that fits, the last data greyed, never "running"."""
        service.signal(signal.SIGKILL)
        self.proc.event('unreachable')
        service.wait()
        self.view('status')
        stale = self.layout()
        banner = [w for w in find(stale, 'TLabel') if 'unreachable' in w.get('text', '')]
        assert banner and banner[0]['y'] < 10, 'no banner saying the service is unreachable'
        tree = find(stale, 'Treeview')[0]
        assert tree['rows'] and all('stale' in r['tags'] for r in tree['rows'])
        states = [r['values'][1] for r in tree['rows']]
        assert all(s.startswith('was ') for s in states), states
        assert any(w.get('text', '').startswith('STALE: the service has not answered')
                   for w in stale['widgets'])
        for view in VIEWS[1:]:  # every view fits with the service gone too
            self.view(view)
            self.layout()

    def document(self, path: Path) -> None:
        """Save a screenshot for the README, the pointer out of the way (nothing hovered)."""
        xdotool(self.display, 'mousemove', '--sync', '1', '1')
        self.layout()
        screenshot(self.display, path)


def moved(before: dict, after: dict) -> dict[str, tuple[int, int]]:
    """Return the buttons whose place (x, y in the window) differs between two layouts."""
    places = {b['path']: (b['x'], b['y']) for b in find(before, BUTTONS)}
    now = {a['path']: (a['x'], a['y']) for a in find(after, BUTTONS)}
    assert set(places) == set(now), f'buttons came or went: {set(places) ^ set(now)}'
    return {path: (place, now[path]) for path, place in places.items() if now[path] != place}


def card_title(layout: dict, action: str) -> dict:
    """Return the title label of the card of a maintenance action."""
    return next(w for w in find(layout, 'TLabel') if w.get('text', '').startswith(f'{action}:')
                and '.!rowpager.' in w['path'])


def card_buttons(layout: dict, action: str) -> dict[str, dict]:
    """Return the Schedule and Unschedule buttons of the card of action."""
    card = card_title(layout, action)['path'].rsplit('.', 1)[0]
    return {w['text']: w for w in find(layout, 'TButton', under=card + '.')}


def pair_a_phone(url: str, name: str) -> dict:
    """Pair a phone with the code in url as the web console's page does (POST /api/pair)."""
    from polycephaly_ros.robot.console.page import CSRF_HEADER

    parts = urllib.parse.urlsplit(url)
    code = urllib.parse.parse_qs(parts.query)['code'][0]
    request = urllib.request.Request(
        f'{parts.scheme}://{parts.netloc}/api/pair', method='POST',
        data=json.dumps({'code': code, 'name': name}).encode(),
        headers={'Content-Type': 'application/json', CSRF_HEADER: '1'})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())['device']


# 1024 x 600 as a kiosk: configured 800 x 480, the window fills the screen all the same.
SIZES = {'800x480': False, '912x540': False, '1024x600': True}


@pytest.mark.parametrize('size', list(SIZES))
def test_touch_layout_results_pairing_and_stale_data(tmp_path: Path, procs: Processes,
                                                     size: str) -> None:
    need('xdotool', 'zbarimg')
    width, height = map(int, size.split('x'))
    kiosk = SIZES[size]
    docs = Path(os.environ['POLYCEPHALY_SCREENSHOTS']) if size == '800x480' and \
        os.environ.get('POLYCEPHALY_SCREENSHOTS') else None
    config = write_config(tmp_path, touchscreen={
        'headless': 'off', 'reply_timeout': 2.0,
        'window': {'width': 800 if kiosk else width, 'height': 480 if kiosk else height,
                   'fullscreen': kiosk}})
    service = procs.service(config)
    with xvfb(tmp_path, width, height) as display:
        proc = procs.touchscreen(config, stdin=True, env=dict(os.environ, DISPLAY=display))
        screen = Screen(proc, display, width, height, kiosk)
        proc.event('reachable')
        proc.event('diagnostics')
        shots = {view: screen.check_view(view, tmp_path) for view in VIEWS}
        screen.check_admin(docs)
        if size == '800x480':  # (the rest once: it is the same at every size)
            screen.check_pairing_a_phone(docs)
        screen.check_stale(service)
        if docs:
            for view in ('status', 'diagnostics'):
                shots[view].replace(docs / f'touchscreen-{view}.png')
        assert proc.stop() == 0


def test_lists_and_cards_that_do_not_fit_are_paged(tmp_path: Path) -> None:
    """More heads or cards than fit: whole rows only, page buttons (touch-sized) to reach the
    rest, nothing outside the window; text too long for its lines ends with an ellipsis."""
    need()
    import tkinter as tk
    from tkinter import ttk

    from polycephaly_ros.robot.touchscreen.gui.layout import describe
    from polycephaly_ros.robot.touchscreen.gui.theme import Theme
    from polycephaly_ros.robot.touchscreen.gui.widgets import ELLIPSIS, FitLabel, RowPager, TouchList

    class Row:
        def __init__(self, parent: tk.Misc) -> None:
            self.frame = ttk.Frame(parent)
            self.label = ttk.Label(self.frame)
            self.label.pack(fill='x')

        def show(self, item: str) -> None:
            self.label.configure(text=item)

    with xvfb(tmp_path) as display:
        root = tk.Tk(screenName=display)
        try:
            root.geometry('800x480+0+0')
            theme = Theme(root, 800, 480)
            tree = TouchList(root, theme, [('name', 'Name'), ('state', 'State')])
            tree.place(x=0, y=0, width=400, height=300)
            tree.set_rows([(f'h{i}', (f'head {i}', 'running'), ()) for i in range(12)])
            pager = RowPager(root, theme, lambda: theme.target + 4, Row)
            pager.place(x=400, y=0, width=400, height=300)
            pager.set_items([f'card {i}' for i in range(7)])
            note = FitLabel(root, theme, lines=2, text='word ' * 200)
            note.place(x=0, y=320, width=800)
            root.update()
            layout = describe(root)
            assert not layout_problems(layout, 800, 480), layout_problems(layout, 800, 480)
            rows = find(layout, 'Treeview')[0]['rows']
            assert 0 < len(rows) < 12 and {'▲', '▼'} <= {w['text'] for w in find(layout, BUTTONS)}
            shown = [w['text'] for w in find(layout, 'TLabel') if w.get('text', '').startswith(
                'card ')]
            assert 0 < len(shown) < 7 and any(w.get('text', '').startswith('1 / ')
                                              for w in find(layout, 'TLabel'))
            pager.forth.invoke()  # the next page: the cards that did not fit
            root.update()
            later = [w['text'] for w in find(describe(root), 'TLabel')
                     if w.get('text', '').startswith('card ')]
            assert later and later[0] == f'card {len(shown)}'
            assert str(note.cget('text')).count('\n') == 1
            assert str(note.cget('text')).endswith(ELLIPSIS)
        finally:
            root.destroy()
