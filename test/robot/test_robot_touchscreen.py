"""The touchscreen client and the system service as real processes, talking."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from robot_support import TIMEOUT, procs, socket_of, write_config  # noqa: F401 (fixture)


def test_status_diagnostics_and_admin_over_the_unix_socket(tmp_path, procs):
    config = write_config(tmp_path)
    service = procs.service(config)
    screen = procs.touchscreen(config, stdin=True)
    _, started = screen.event('started')
    assert started['headless'] is True and started['transport'] == 'uds'
    _, qr = screen.event('qr')
    assert qr['uri'] == 'polycephaly://robot/pair' and qr['modules'] > 20
    _, reachable = screen.event('reachable')
    assert reachable['service_pid'] == service.pid
    _, status = screen.event('status', where=lambda e: e['exchanges'] >= 2)
    assert status['heads'] == {'network': 'running', 'updates': 'running',
                               'diagnostics': 'running', 'uds_server': 'running'}
    _, diagnostics = screen.event('diagnostics')
    assert diagnostics['level'] in ('OK', 'WARN', 'ERROR')

    screen.send_line('restart network')
    _, restarted = screen.event('admin', where=lambda e: e['subject'] == 'restart_head')
    assert restarted['ok'] and restarted['body']['state']['generation'] == 2
    screen.send_line('stop nosuch')
    _, refused = screen.event('admin', where=lambda e: e['subject'] == 'stop_head')
    assert not refused['ok'] and 'nosuch' in refused['error']
    screen.send_line('schedule reboot')
    _, scheduled = screen.event('admin', where=lambda e: e['subject'] == 'schedule')
    assert scheduled['ok'] and scheduled['body']['decision']['outcome'] == 'deferred'

    assert screen.stop() == 0
    assert service.stop() == 0


def test_reports_the_service_unreachable_promptly_and_recovers(tmp_path, procs):
    # reply_timeout 1 s: long enough that a loaded machine does not report the living service
    # unreachable before the kill, and short next to the waits the bound below rules out.
    config = write_config(tmp_path, touchscreen={'reply_timeout': 1.0, 'admin_timeout': 15.0})
    service = procs.service(config)
    screen = procs.touchscreen(config)
    screen.event('reachable')
    screen.event('status', where=lambda e: e['exchanges'] >= 2)

    killed = time.time()  # an event's "time" is the touchscreen's time.time() when it reported
    service.signal(signal.SIGKILL)
    _, unreachable = screen.event('unreachable', where=lambda e: e['time'] >= killed)
    # The cause: the route found the service's socket gone (a bounce), or a status request
    # went unanswered for reply_timeout; nothing else.
    error = unreachable['error']
    assert socket_of(config) in error or error == "no reply from 'service' within 1 s", error
    # Promptly: the designed path takes at most status_period + reply_timeout (1.2 s here).
    # 5 s leaves room for a loaded machine and still fails if the touchscreen waited for
    # anything longer: wait_for_reply's default 10 s, admin_timeout (15 s), or the in-flight
    # guard that holds a lost status request back for admin_timeout + 5 s.
    late = unreachable['time'] - killed
    assert late < 5.0, f'reported {late:.2f} s after the kill: {error}'
    service.wait()

    second = procs.service(config)  # the service comes back
    _, reachable = screen.event('reachable')
    assert reachable['service_pid'] == second.pid
    _, status = screen.event('status', where=lambda e: e['service_pid'] == second.pid)
    assert status['heads']['diagnostics'] == 'running'
    assert screen.stop() == 0
    assert second.stop() == 0


def test_status_and_diagnostics_over_ros(tmp_path, procs):
    """transport: ros - the touchscreen reaches the service by head name over the ROS bridge.

    The service serves no Unix socket here, so every answer came over the ROS graph.
    """
    config = write_config(tmp_path, service={'uds': {'enabled': False}},
                          touchscreen={'transport': 'ros', 'reply_timeout': 2.0})
    service = procs.service(config)
    screen = procs.touchscreen(config)
    _, started = screen.event('started')
    assert started['transport'] == 'ros' and started['ros'] is True
    assert started['ros_bridge'] is True, 'no ROS bridge: requests could not leave the touchscreen'
    _, reachable = screen.event('reachable')
    assert reachable['service_pid'] == service.pid
    assert 'transport ros' in reachable['text']
    _, status = screen.event('status', where=lambda e: e['exchanges'] >= 2)
    assert status['service_pid'] == service.pid and 'uds_server' not in status['heads']
    _, diagnostics = screen.event('diagnostics')
    assert diagnostics['level'] in ('OK', 'WARN', 'ERROR')
    assert screen.stop() == 0
    assert service.stop() == 0


def free_display() -> int:
    for number in range(90, 190):
        if not os.path.exists(f'/tmp/.X11-unix/X{number}') and not os.path.exists(
                f'/tmp/.X{number}-lock'):
            return number
    pytest.skip('no free X display number')


@pytest.fixture
def xvfb(tmp_path):
    """Start Xvfb on a free display; yield its DISPLAY; stop it."""
    if shutil.which('Xvfb') is None:
        pytest.skip('Xvfb is not installed (Debian package xvfb; ./dev setup installs it as root)')
    try:
        import tkinter  # noqa: F401
    except ImportError as exc:
        pytest.skip(f'tkinter is not importable in this Python: {exc}')
    number = free_display()
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb writes the display number once it accepts connections (no sleeping)
    proc = subprocess.Popen(['Xvfb', f':{number}', '-screen', '0', '800x480x24', '-nolisten',
                             'tcp', '-displayfd', str(write_fd)], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / 'xvfb.log', 'wb'))
    os.close(write_fd)
    with os.fdopen(read_fd) as ready:
        assert ready.readline().strip() == str(number), (tmp_path / 'xvfb.log').read_text()
    try:
        yield f':{number}'
    finally:
        proc.terminate()
        proc.wait(10)


def xdotool(display: str, *args: str) -> str:
    return subprocess.run(['xdotool', *args], env=dict(os.environ, DISPLAY=display), check=True,
                          capture_output=True, text=True, timeout=TIMEOUT).stdout.strip()


def banner(path: Path) -> tuple[str, float]:
    """Return the commonest colour (#rrggbb) of the window's top rows and its share of them.

    The window sits at +0+0 (no window manager under Xvfb) and its banner spans its width; the
    top rows are the banner's padding, so they hold its background colour alone.
    """
    from PIL import Image

    strip = Image.open(path).convert('RGB').crop((0, 0, 800, 6))
    count, rgb = max(strip.getcolors(strip.width * strip.height))
    return '#%02x%02x%02x' % rgb, count / (strip.width * strip.height)


def black_pixels(path: Path) -> int:
    """Count the pixels drawn pure black (the QR code's modules; text is anti-aliased)."""
    from PIL import Image

    colours = Image.open(path).convert('RGB').getcolors(1 << 24)
    return sum(n for n, rgb in colours if rgb == (0, 0, 0))


def test_tk_window_under_xvfb(tmp_path, procs, xvfb):
    if shutil.which('xdotool') is None:
        pytest.skip('xdotool is not installed (Debian package xdotool)')
    from PIL import ImageGrab

    from polycephaly_ros.robot.gui import BAD_COLOUR, OK_COLOUR
    from polycephaly_ros.robot.qr import qr_matrix

    # reply_timeout 2 s: a living service is never shown unreachable on a loaded machine
    config = write_config(tmp_path, touchscreen={'headless': 'off', 'reply_timeout': 2.0})
    service = procs.service(config)
    screen = procs.touchscreen(config, env=dict(os.environ, DISPLAY=xvfb))
    _, started = screen.event('started')
    assert started['headless'] is False
    screen.event('reachable')
    screen.event('diagnostics')
    window = xdotool(xvfb, 'search', '--sync', '--name', 'Polycephaly robot').split()[0]
    xdotool(xvfb, 'windowfocus', '--sync', window)
    shots = {}
    for key, view in (('2', 'diagnostics'), ('4', 'pair'), ('1', 'status')):
        xdotool(xvfb, 'key', '--window', window, key)  # the window's own key bindings
        screen.event('view', where=lambda e, v=view: e['view'] == v)
        screen.event('status')  # a full round of the GUI loop has drawn the view since
        path = tmp_path / f'touchscreen-{view}.png'
        ImageGrab.grab(xdisplay=xvfb).save(path)
        shots[view] = path
    for view, path in shots.items():  # every view shows the service reachable: a green banner
        colour, share = banner(path)
        assert colour == OK_COLOUR and share > 0.95, f'{view}: banner {colour} ({share:.0%})'
    # The pairing view draws the whole QR code (cells of 300 // modules pixels, pure black);
    # the status view has no such black area.
    matrix = qr_matrix('polycephaly://robot/pair')
    code = sum(map(sum, matrix)) * (300 // len(matrix)) ** 2
    assert black_pixels(shots['pair']) >= code, 'the pairing view shows no (whole) QR code'
    assert black_pixels(shots['status']) < code / 2, 'the status view shows a QR code'

    killed = time.time()
    service.signal(signal.SIGKILL)  # the window shows the service unreachable, without freezing
    screen.event('unreachable', where=lambda e: e['time'] >= killed)
    service.wait()
    xdotool(xvfb, 'key', '--window', window, '3')
    screen.event('view', where=lambda e: e['view'] == 'admin')  # drawn: the window still runs
    path = tmp_path / 'touchscreen-unreachable.png'
    ImageGrab.grab(xdisplay=xvfb).save(path)
    colour, share = banner(path)
    assert colour == BAD_COLOUR and share > 0.95, f'unreachable: banner {colour} ({share:.0%})'
    assert screen.stop() == 0
