"""The touchscreen client: an application whose main head drives a view (Tk window or headless).

Heads:

* ``touchscreen`` (:class:`TouchscreenMain`) - the main head, on the main thread: holds the model
  (the service's status, diagnostics, link, the admin results, and the pairing code and paired
  devices of :mod:`.pairing`), runs the view (the Tk window of :mod:`.gui`, whose event loop
  every life() pumps, or the view of :mod:`.headless`), asks the service for its status and
  diagnostics periodically (and, while the pair view is shown, for a pairing code and the
  devices), sends administrative actions, carries out commands typed on stdin
  (:mod:`.commands`), and reports all of it as events on stdout (:mod:`.events`);
* ``touchscreen_poll`` and ``touchscreen_admin`` - thread heads that carry the requests
  (:mod:`.client_head`): each sends one envelope to the service and waits for its reply
  (``wait_for_reply`` with ``reply_timeout`` or ``admin_timeout``), then hands the outcome back
  to the main head. The window never waits on the service, so it never freezes;
* ``uds_client`` - the Unix-socket route head (transport ``uds``), or ``dbus_client``,
  ``mqueue`` or ``serial`` (transports ``dbus``, ``mqueue``, ``serial``: the route heads that
  reach the service's of the same kind, ``touchscreen.<transport>_head``); with transport
  ``ros`` the envelopes travel over the ROS bridge instead (:mod:`..link`). Named pipes are
  no transport here: the service's FIFO pair is for shell scripts.

Threading: the model is read and changed only in the main head's thread (life(), its filters,
and the window's callbacks, which Tk runs inside pump()); the carriers and the stdin reader
reach it by envelope only. A request is not handed out again while the same one (its tag) is
still in flight, for at most ``admin_timeout`` + 5 s.

When a status request fails (no reply in time, or the route bounced it because the service is
gone), the view shows "service unreachable" and the reason, and what the service said before as
stale (greyed, with its age); polling goes on, and the first answer after the service returns
shows it reachable again. With ``--count N`` exactly N status and N diagnostics exchanges are
made and reported, then the touchscreen stops.

``python -m polycephaly_ros.robot.touchscreen`` (:mod:`.__main__`) and the
``polycephaly-touchscreen`` script run :func:`main` (``--help``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Sequence

from ...application import Application
from ...errors import ConfigurationError, PolycephalyError
from ...filters import message_filter
from .. import cli, link
from .. import config as cfg
from .client_head import ClientHead
from .commands import CommandsMixin
from ..common import RobotHead
from .events import Events
from .headless import HeadlessView, read_commands
from .pairing import Pairing
from .qr import qr_text
from .screen_text import diagnostics_text, result_text, status_text
from .view_text import device_text

if TYPE_CHECKING:  # imported when needed only: Tk is optional
    from .gui import TkView

POLL = 'touchscreen_poll'
ADMIN = 'touchscreen_admin'


class TouchscreenMain(CommandsMixin, RobotHead):
    """The GUI head: the model, the requests and the view."""

    def birth(self) -> None:
        app = self.application
        self.config = app.config
        self.section = s = self.config[cfg.TOUCHSCREEN]
        self.events = Events(app.as_json)
        self.count = app.count
        self.reachable: bool | None = None
        self.unreachable_reason = ''
        self.unreachable_since = 0.0
        self.status: dict | None = None
        self.status_at = 0.0                  # epoch s of the last status answer
        self.diag: dict | None = None
        self.diag_at = 0.0
        self.link: dict | None = None
        self.decisions: dict[str, dict] = {}  # action -> the decision our schedule brought
        self.pairing = Pairing()
        self.message = {'text': '', 'error': False, 'serial': 0}  # the window's message area
        self.admin_results: list[dict] = []
        self.exchanges = {'status': 0, 'diagnostics': 0}
        self.inflight: dict[str, float] = {}
        self.due = {'status': 0.0, 'diagnostics': 0.0}
        self.subscribed = False
        self._pairing_said = ''
        if self.node is not None:
            cfg.declare_parameters(self.node, self.config, cfg.TOUCHSCREEN)
        bridge = link.ros_bridge_ready(self)
        if s['transport'] == 'ros' and not bridge:
            self.logger.error('transport is ros but the ROS bridge is not available here: '
                              'requests to the service cannot leave this application')
        self.view = self._make_view(app.headless)
        self.headless = isinstance(self.view, HeadlessView)
        if app.read_stdin:
            read_commands(self)
        self.events.emit('started', f'started ({"headless" if self.headless else "Tk window"}, '
                         f'transport {s["transport"]}, pid {os.getpid()})',
                         headless=self.headless, transport=s['transport'], ros_bridge=bridge,
                         ros=self.node is not None, pid=os.getpid())
        self.view.refresh()

    def _make_view(self, headless: str) -> HeadlessView | TkView:
        """Open the Tk window, or the headless view when asked to or (auto) when it fails."""
        if headless == 'auto' and not os.environ.get('DISPLAY'):
            headless = 'on'
        if headless != 'on':
            try:
                from .gui import TkView

                return TkView(self)
            except Exception as exc:  # noqa: BLE001 - no Tk, or no display to open
                if headless == 'off':
                    raise ConfigurationError(f'headless is off but no window opens: {exc}') \
                        from exc
                self.logger.warning('no window (%s): running headless', exc)
        return HeadlessView(self)

    # -- the loop ------------------------------------------------------------------------
    def life(self) -> None:
        now = time.monotonic()
        s = self.section
        for tag, period in (('status', s['status_period']),
                            ('diagnostics', s['diagnostics_period'])):
            if self.count and self.exchanges[tag] >= self.count:
                continue  # --count: exactly that many exchanges of each kind
            if now >= self.due[tag] and self.request(tag, tag, via=POLL):
                self.due[tag] = now + period
        if self.view.current == 'pair':
            for subject in self.pairing.due(now, time.time()):
                if self.request(subject, subject):
                    self.pairing.asked(subject)
        self.mailman()
        self.view.pump()
        if self.view.closed:
            self.application.shutdown('the window was closed')

    def death(self) -> None:
        self.view.close()

    # -- requests ------------------------------------------------------------------------
    def request(self, tag: str, subject: str, body: Any = None, via: str = ADMIN) -> bool:
        """Hand a request to a carrier head, unless the same tag is still in flight."""
        now = time.monotonic()
        started = self.inflight.get(tag)
        if started is not None and now - started < self.section['admin_timeout'] + 5.0:
            return False
        try:
            self.send(via, 'request', {'tag': tag, 'subject': subject, 'body': body})
        except PolycephalyError as exc:
            self.logger.error('cannot hand %r to %r: %s', subject, via, exc)
            return False
        self.inflight[tag] = now
        return True

    def admin(self, subject: str, body: Any = None) -> None:
        """Send an administrative request; its outcome is shown when it comes."""
        self.request(f'admin:{subject}:{json.dumps(body, sort_keys=True)}', subject, body)

    def say(self, text: str, error: bool = False) -> None:
        """Put text in the window's message area."""
        self.message = {'text': text, 'error': error, 'serial': self.message['serial'] + 1}

    @message_filter(subject='result')
    def on_result(self, message: dict) -> None:
        """Take a carrier's outcome into the model, report it and refresh the view."""
        result = message['body']
        tag = result['tag']
        self.inflight.pop(tag, None)
        if tag == 'status':
            self._on_status(result)
        elif tag == 'diagnostics':
            self._on_diagnostics(result)
        elif tag == 'subscribe':
            self.subscribed = result['ok']
            if result['ok'] and result['body'].get('link'):
                self.link = result['body']['link']
        elif tag == 'pair':
            self._on_pair(result)
        elif tag == 'devices':
            self._on_devices(result)
        else:
            self._on_admin(result)
        self._check_done()
        self.view.refresh()

    def _on_admin(self, result: dict) -> None:
        """Keep, say and report the outcome of an administrative request."""
        self.admin_results.append(result)
        del self.admin_results[:-20]
        ok, what, body = result['ok'], result['subject'], result.get('body')
        if ok and what == 'schedule' and isinstance(body, dict) and body.get('decision'):
            self.decisions[str(body.get('scheduled'))] = body['decision']
        if what == 'revoke_device':
            self.pairing.refresh_devices(time.monotonic())
        text = result_text(result, self.status)
        self.say(text, error=not ok)
        self.events.emit('admin', text, subject=what, ok=ok, request=result.get('request'),
                         body=body, error=result.get('error'))

    def _on_status(self, result: dict) -> None:
        """Take a status answer (or failure) into the model and report it."""
        if self.count and self.exchanges['status'] >= self.count:
            return
        if not result['ok']:
            self._set_reachable(False, result['error'])
            return
        theirs = (result['body'] or {}).get('namespace')
        ours = self.application.namespace
        if theirs != ours:  # never take another robot's service for ours
            self._set_reachable(False, f'the service that answered belongs to another robot '
                                       f'(namespace {theirs!r}, not {ours!r})')
            return
        self.status = result['body']
        self.status_at = time.time()
        self.exchanges['status'] += 1
        self._set_reachable(True, '')
        if (self.status or {}).get('link'):
            self.link = self.status['link']
        self.events.emit('status', f'status #{self.exchanges["status"]}: '
                         f'{status_text(self.status)}',
                         exchanges=self.exchanges['status'], seconds=result['seconds'],
                         service_pid=self.status.get('pid'),
                         heads={h['name']: h['state'] for h in self.status.get('heads', [])})

    def _on_diagnostics(self, result: dict) -> None:
        """Take a diagnostics answer (or failure) into the model and report it."""
        if self.count and self.exchanges['diagnostics'] >= self.count:
            return
        if result['ok']:
            self.diag = result['body']
            self.diag_at = time.time()
            self.exchanges['diagnostics'] += 1
            self.events.emit('diagnostics', f'diagnostics: {diagnostics_text(self.diag)}',
                             level=self.diag.get('level'), seconds=result['seconds'],
                             exchanges=self.exchanges['diagnostics'])
        elif not result.get('reachable', False):
            self._set_reachable(False, result['error'])

    def _on_pair(self, result: dict) -> None:
        """Take a pairing code (or why there is none) and report it."""
        if self.pairing.on_code(result, time.monotonic(), time.time()):
            code = self.pairing.code
            text = (f'pair a phone: open {code["url"]} (code {code["code"]}, valid '
                    f'{code["ttl"]:.0f} s)')
            if self.pairing.qr and self.headless and not self.application.as_json:
                text += '\n' + qr_text(self.pairing.qr)
            self.events.emit('qr', text, url=code['url'], code=code['code'],
                             expires=code['expires'], ttl=code['ttl'],
                             modules=len(self.pairing.qr) if self.pairing.qr else 0)
            self._pairing_said = ''
        elif self.pairing.error and self.pairing.error != self._pairing_said:
            self._pairing_said = self.pairing.error
            self.events.emit('pairing', f'pairing unavailable: {self.pairing.error}',
                             available=False, error=self.pairing.error)

    def _on_devices(self, result: dict) -> None:
        """Take the paired devices and report them when they changed."""
        if not self.pairing.on_devices(result, time.monotonic()):
            return
        wall = time.time()
        devices = self.pairing.devices or []
        self.events.emit('devices', 'paired devices: ' + ('; '.join(
            device_text(d, wall) for d in devices) or 'none'), devices=devices)
        for device in self.pairing.paired:
            self.say(f'Paired: {device.get("name") or device["id"]}')

    def _set_reachable(self, reachable: bool, reason: str) -> None:
        """Record whether the service answers, and report a change."""
        if reachable == self.reachable and (reachable or reason == self.unreachable_reason):
            return
        if not reachable and self.reachable is not False:
            self.unreachable_since = time.time()
        self.reachable = reachable
        self.unreachable_reason = reason
        if reachable:
            pid = (self.status or {}).get('pid')
            self.events.emit('reachable', f'service reachable (pid {pid}, transport '
                             f'{self.section["transport"]})', service_pid=pid)
            self.subscribed = False
            self.request('subscribe', 'subscribe', via=POLL)
            if self.pairing.error and self.view.current == 'pair':
                self.pairing.renew(time.monotonic())
        else:  # (also when only the reason changed: say why now)
            self.events.emit('unreachable', f'service unreachable: {reason}', error=reason)

    @message_filter(subject='link_changed')
    def on_link(self, message: dict) -> None:
        """Show and report a link change the service pushed."""
        self.link = message['body'] or {}
        up = self.link.get('up')
        self.events.emit('link', f'link {"up" if up else "DOWN"}: {self.link.get("reason")}',
                         up=up, reason=self.link.get('reason'))
        self.view.refresh()

    def _check_done(self) -> None:
        """Stop once --count exchanges of each kind were made."""
        if self.count and min(self.exchanges.values()) >= self.count and not self.stopping:
            self.events.emit('done', f'{self.count} status and diagnostics exchanges done',
                             exchanges=dict(self.exchanges))
            self.application.shutdown(f'--count {self.count} reached')


class TouchscreenApplication(Application):
    """The touchscreen client, built from a configuration."""

    def __init__(self, config: dict, *, headless: str | None = None, as_json: bool = False,
                 count: int = 0, read_stdin: bool = True, **options: Any) -> None:
        section = config[cfg.TOUCHSCREEN]
        opts = cfg.application_options(section, config['robot']['namespace'])
        opts.update(options)
        super().__init__(TouchscreenMain, name=cfg.TOUCHSCREEN, **opts)
        self.config = config
        self.headless = headless or section['headless']
        self.as_json = as_json
        self.count = count
        self.read_stdin = read_stdin

    def build(self) -> None:
        """Add the transport's route heads and the two carrier heads."""
        section = self.config[cfg.TOUCHSCREEN]
        for klass, kwargs in link.client_heads(self.config):
            self.add_process(klass, **kwargs)
        via = link.via_headers(self.config)
        for name, timeout in ((POLL, section['reply_timeout']), (ADMIN, section['admin_timeout'])):
            self.add_process(ClientHead, name=name, mode='thread', restart='on_failure',
                             service=cfg.SERVICE, via=via, timeout=timeout, main=self.main_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the touchscreen until its window closes, SIGINT/SIGTERM, or --count is reached."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, ros = cli.split_ros_args(argv)
    p = cli.parser('The robot\'s touchscreen client (polycephaly_ros).')
    p.add_argument('--headless', choices=('auto', 'on', 'off'),
                   help='no window (default: touchscreen.headless; auto = no window without '
                        'DISPLAY or Tk)')
    p.add_argument('--transport', choices=(*cfg.TRANSPORTS, ''),
                   help='touchscreen.transport ("" = as configured)')
    p.add_argument('--json', action='store_true', help='print events as JSON lines')
    p.add_argument('--count', type=int, default=0,
                   help='stop after N status and N diagnostics exchanges (0: never)')
    p.add_argument('--no-stdin', action='store_true', help='do not read commands from stdin')
    args = p.parse_args(ours)
    config, _path = cli.load(args, ros, cfg.TOUCHSCREEN)
    ros_args = cli.setup_logging(args.log_level, config, cfg.TOUCHSCREEN, ros)
    if args.transport:
        config[cfg.TOUCHSCREEN]['transport'] = args.transport
    sys.argv[1:] = ours
    if (args.headless or config[cfg.TOUCHSCREEN]['headless']) == 'off' \
            and not os.environ.get('DISPLAY'):
        raise ConfigurationError('headless is off but there is no display (DISPLAY is not '
                                 'set): set DISPLAY, or use headless on or auto')
    app = TouchscreenApplication(config, headless=args.headless, as_json=args.json,
                                 count=args.count, read_stdin=not args.no_stdin,
                                 ros_args=ros_args)
    return cli.run_application(app)


def cli_main() -> None:
    """Run main() as a console script: exit with its code."""
    sys.exit(cli.run(main, None))


