"""The touchscreen client and the system service as real processes, talking."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from robot_support import TIMEOUT, procs, script, socket_of, write_config  # noqa: F401 (fixture)
from screen_support import collect, need, xdotool, xvfb


def test_status_diagnostics_and_admin_over_the_unix_socket(tmp_path, procs):
    config = write_config(tmp_path)
    service = procs.service(config)
    screen = procs.touchscreen(config, stdin=True)
    _, started = screen.event('started')
    assert started['headless'] is True and started['transport'] == 'uds'
    _, reachable = screen.event('reachable')
    assert reachable['service_pid'] == service.pid
    _, status = screen.event('status', where=lambda e: e['exchanges'] >= 2)
    assert set(status['heads']) >= {'network', 'updates', 'diagnostics', 'uds_server'}
    assert set(status['heads'].values()) == {'running'}, status['heads']
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


def test_tk_window_under_xvfb(tmp_path, procs):
    need('xdotool')
    # reply_timeout 2 s: a living service is never shown unreachable on a loaded machine
    config = write_config(tmp_path, touchscreen={'headless': 'off', 'reply_timeout': 2.0})
    service = procs.service(config)
    with xvfb(tmp_path) as display:
        tk_window(tmp_path, procs, service, config, display)


def tk_window(tmp_path: Path, procs, service, config: Path, xvfb: str) -> None:
    """Drive the window by its keys: views drawn, banners, the QR code of the service's URL."""
    from PIL import ImageGrab

    from polycephaly_ros.robot.touchscreen.gui import BAD_COLOUR, OK_COLOUR
    from polycephaly_ros.robot.touchscreen.qr import qr_matrix

    screen = procs.touchscreen(config, stdin=True, env=dict(os.environ, DISPLAY=xvfb))
    _, started = screen.event('started')
    assert started['headless'] is False
    screen.event('reachable')
    screen.event('diagnostics')
    window = xdotool(xvfb, 'search', '--sync', '--name', 'Polycephaly robot').split()[0]
    xdotool(xvfb, 'windowfocus', '--sync', window)
    shots = {}
    for key, view in (('2', 'diagnostics'), ('4', 'pair'), ('1', 'status')):
        xdotool(xvfb, 'key', '--window', window, key)  # the window's own key bindings
        if view == 'pair':  # the service's pairing URL (before or after the view is drawn)
            qr = collect(screen, view=lambda e: e['view'] == 'pair', qr=bool)['qr']
        else:
            screen.event('view', where=lambda e, v=view: e['view'] == v)
        screen.send_line('layout')  # reported once the window has drawn everything since
        screen.event('layout')
        path = tmp_path / f'touchscreen-{view}.png'
        ImageGrab.grab(xdisplay=xvfb).save(path)
        shots[view] = path
    for view, path in shots.items():  # every view shows the service reachable: a green banner
        colour, share = banner(path)
        assert colour == OK_COLOUR and share > 0.95, f'{view}: banner {colour} ({share:.0%})'
    # The pairing view draws the whole QR code of the URL (pure black cells of at least 4 px);
    # the status view has no such black area.
    matrix = qr_matrix(qr['url'])
    code = sum(map(sum, matrix)) * 4 ** 2
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


def test_headless_help_views_and_results_in_words(tmp_path, procs):
    from polycephaly_ros.robot.touchscreen.screen_text import COMMANDS

    config = write_config(tmp_path)
    service = procs.service(config)
    screen = procs.touchscreen(config, stdin=True)
    screen.send_line('help')
    _, help_ = screen.event('help')
    lines = help_['text'].splitlines()
    assert lines[0] == 'commands:' and len(lines) == len(COMMANDS) + 1
    for line, name in zip(lines[1:], COMMANDS):  # one command a line, its words beside it
        assert line.startswith(f'  {name} ') and len(line) <= 80, line
    screen.event('status')
    screen.event('diagnostics')

    def view(name: str) -> str:
        screen.send_line(f'view {name}')
        return screen.event('view', where=lambda e: e['view'] == name)[1]['content']

    status = view('status')
    assert f'Service pid {service.pid} on ' in status and '  network: running (' in status
    assert 'Health: ' in view('diagnostics')
    admin = view('admin')
    assert '  reboot: Reboot (kernel, UEFI or GRUB update) - not scheduled' in admin
    assert 'Heads (start NAME, stop NAME, restart NAME):\n  network: running' in admin
    screen.send_line('view pair')  # asks the service for a code and the devices, then shows
    _, qr = screen.event('qr')
    pair = screen.event('view', where=lambda e: e['view'] == 'pair')[1]['content']
    assert re.fullmatch(r'https?://\S+\?code=[A-Z0-9]{4}-[A-Z0-9]{4}', qr['url'])
    assert qr['url'].endswith(qr['code']) and qr['expires'] > time.time()
    assert f'Pair a phone: open {qr["url"]}' in pair and f'the code {qr["code"]}; it ' \
        f'expires in ' in pair and pair.endswith('Paired devices (revoke ID):\n  none'), pair

    screen.send_line('schedule reboot')  # outcomes in words, never JSON
    _, scheduled = screen.event('admin', where=lambda e: e['subject'] == 'schedule')
    assert scheduled['text'].startswith('Reboot scheduled: ') and '{' not in scheduled['text']
    screen.event('status')  # (its request may have left before the schedule's answer came)
    screen.event('status')  # asked after that answer: the action shows pending
    assert '  reboot: Reboot (kernel, UEFI or GRUB update) - scheduled; last: ' in view('admin')
    screen.send_line('revoke nosuch')
    _, revoked = screen.event('admin', where=lambda e: e['subject'] == 'revoke_device')
    assert not revoked['ok'] and revoked['text'].startswith('Revoke device nosuch refused: ')
    assert screen.stop() == 0
    assert service.stop() == 0


def test_headless_text_and_pairing_unavailable(tmp_path, procs):
    """Without --json: help one command a line; a service without pairing is said so."""
    config = write_config(tmp_path, service={'console': {'enabled': False}})
    service = procs.service(config)
    screen = procs.start('touchscreen', [script('polycephaly-touchscreen'), '--config',
                                         str(config), '--headless', 'on'], stdin=True)
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT

    def read_until(done) -> None:
        while not any(done(line) for line in seen):
            _, line = screen.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, '\n'.join(seen)
            seen.append(line)

    read_until(lambda line: line.startswith('touchscreen: service reachable'))
    for line in ('help', 'view pair'):
        screen.send_line(line)
    read_until(lambda line: line.startswith('  unknown: '))  # the pair view's last line
    screen.send_line('quit')
    seen += screen.rest()
    text = '\n'.join(seen)
    start = seen.index('touchscreen: commands:')
    assert seen[start + 1].startswith('  view NAME ') and seen[start + 2].startswith('  status ')
    assert 'touchscreen: pairing unavailable: the mobile console is off' in text, text
    assert 'touchscreen: view: pair\npairing unavailable: ' in text, text
    assert screen.wait() == 0
    assert service.stop() == 0


def test_json_stdout_is_pure_and_count_is_exact(tmp_path):
    """polycephaly-robot --json --count 3 (what ./dev run --json --count 3 runs): stdout holds
    JSON events only (logs go to stderr), exactly 3 status and 3 diagnostics, then done."""
    config = write_config(tmp_path)
    done = subprocess.run([script('polycephaly-robot'), '--config', str(config), '--json',
                           '--count', '3', '--headless', 'on'], capture_output=True, text=True,
                          timeout=TIMEOUT * 2, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]  # each line is JSON
    kinds = [e['event'] for e in events]
    assert kinds.count('status') == 3 and kinds.count('diagnostics') == 3, kinds
    assert kinds[-1] == 'done' and events[-1]['exchanges'] == {'status': 3, 'diagnostics': 3}
    assert [e['exchanges'] for e in events if e['event'] == 'status'] == [1, 2, 3]
    assert 'started the service' in done.stderr  # the logs are there, on stderr
