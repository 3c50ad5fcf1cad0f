"""Helpers for the touchscreen's tests: a real Xvfb, xdotool taps, screenshots, zbarimg, events.

:func:`xvfb` starts an X server of a given screen size on a free display (it says when it
accepts connections: ``-displayfd``, no sleeping) and stops it; :func:`tap` moves the pointer and
clicks like a finger; :func:`screenshot` grabs the screen with Pillow; :func:`decode_qr` reads
a QR code in an image with zbarimg (Debian zbar-tools); :func:`collect` waits for events of
several kinds that may come in either order (a pairing code can come before or after the pair
view is drawn).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

TIMEOUT = 30.0


def need(*commands: str) -> None:
    """Skip the test when a command it needs is not installed."""
    for command in commands:
        if shutil.which(command) is None:
            pytest.skip(f'{command} is not installed (./dev setup installs it as root)')
    try:
        import tkinter  # noqa: F401
    except ImportError as exc:
        pytest.skip(f'tkinter is not importable in this Python: {exc}')


def free_display() -> int:
    """Return an X display number nobody uses."""
    for number in range(90, 190):
        if not os.path.exists(f'/tmp/.X11-unix/X{number}') and not os.path.exists(
                f'/tmp/.X{number}-lock'):
            return number
    pytest.skip('no free X display number')


@contextlib.contextmanager
def xvfb(tmp_path: Path, width: int = 800, height: int = 480) -> Iterator[str]:
    """Run Xvfb with a width x height screen; yield its DISPLAY."""
    need('Xvfb')
    number = free_display()
    read_fd, write_fd = os.pipe()
    log = open(tmp_path / f'xvfb-{number}.log', 'wb')
    proc = subprocess.Popen(['Xvfb', f':{number}', '-screen', '0', f'{width}x{height}x24',
                             '-nolisten', 'tcp', '-displayfd', str(write_fd)],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=log)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as ready:
            assert ready.readline().strip() == str(number), \
                (tmp_path / f'xvfb-{number}.log').read_text()
        yield f':{number}'
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def xdotool(display: str, *args: str) -> str:
    """Run xdotool on display; return its output."""
    return subprocess.run(['xdotool', *args], env=dict(os.environ, DISPLAY=display), check=True,
                          capture_output=True, text=True, timeout=TIMEOUT).stdout.strip()


def tap(display: str, widget: dict, window: dict) -> None:
    """Tap the middle of a widget of a layout report (pointer moved there, then a click)."""
    x = window['x'] + widget['x'] + widget['width'] // 2
    y = window['y'] + widget['y'] + widget['height'] // 2
    xdotool(display, 'mousemove', '--sync', str(x), str(y), 'click', '1')


def screenshot(display: str, path: Path) -> Path:
    """Save the whole screen of display as a PNG at path."""
    from PIL import ImageGrab

    ImageGrab.grab(xdisplay=display).save(path)
    return path


def decode_qr(path: Path, box: tuple[int, int, int, int] | None = None) -> list[str]:
    """Return what zbarimg reads in the image at path, one entry per code.

    box (left, top, right, bottom) crops the image first.
    """
    need('zbarimg')
    if box is not None:
        from PIL import Image

        cropped = path.with_name(path.stem + '-crop.png')
        Image.open(path).crop(box).save(cropped)
        path = cropped
    done = subprocess.run(['zbarimg', '--raw', '-q', '-Sdisable', '-Sqrcode.enable', str(path)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    return [line for line in done.stdout.splitlines() if line]


def collect(proc: Any, **wanted: Callable[[dict], bool]) -> dict[str, dict]:
    """Return the next event of each kind wanted (matching its test), in any order.

    A pairing error (the ``pairing`` event) fails at once.
    """
    found: dict[str, dict] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(found) < len(wanted):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f'no {set(wanted) - set(found)} event:\n' + '\n'.join(
            line for line in proc.seen if '"status"' not in line and '"diagnostics"' not in line
            and '"layout"' not in line) + proc.log()
        try:
            _, line = proc.lines.get(timeout=remaining)
        except queue.Empty:
            continue
        assert line is not None, 'the touchscreen ended:\n' + proc.log()
        proc.seen.append(line)
        event = json.loads(line) if line.startswith('{') else {}
        kind = event.get('event')
        assert kind != 'pairing', f'pairing unavailable: {event.get("error")}'
        if kind in wanted and kind not in found and wanted[kind](event):
            found[kind] = event
    return found
