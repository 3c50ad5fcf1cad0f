"""The touchscreen client: an application whose main head drives a view (Tk window or headless).

Heads:

* ``touchscreen`` (:class:`TouchscreenMain`) - the main head, on the main thread: holds the model
  (the service's status, diagnostics, link and the admin results), runs the view (the Tk window
  of :mod:`.gui`, whose event loop every life() pumps, or the view of :mod:`.headless`), asks the
  service for its status and diagnostics periodically, sends administrative actions, and
  reports all of it as events on stdout (:mod:`.events`);
* ``touchscreen_poll`` and ``touchscreen_admin`` - thread heads that carry the requests
  (:mod:`.client_head`): each sends one envelope to the service and waits for its reply
  (``wait_for_reply`` with ``reply_timeout`` or ``admin_timeout``), then hands the outcome back
  to the main head. The window never waits on the service, so it never freezes;
* ``uds_client`` - the Unix-socket route head (transport ``uds``); with transport ``ros`` the
  envelopes travel over the ROS bridge instead (:mod:`.link`).

Threading: the model is read and changed only in the main head's thread (life(), its filters,
and the window's callbacks, which Tk runs inside pump()); the carriers and the stdin reader
reach it by envelope only. A request is not handed out again while the same one (its tag) is
still in flight, for at most ``admin_timeout`` + 5 s.

When a status request fails (no reply in time, or the route bounced it because the service is
gone), the view shows "service unreachable" and the reason; polling goes on, and the first
answer after the service returns shows it reachable again.

``python -m polycephaly_ros.robot.touchscreen`` and the ``polycephaly-touchscreen`` script run
:func:`main` (``--help``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Sequence

from ..application import Application
from ..errors import ConfigurationError, PolycephalyError
from ..filters import message_filter
from . import cli, link
from . import config as cfg
from .client_head import ClientHead
from .common import RobotHead
from .events import Events
from .headless import HeadlessView
from .qr import qr_matrix, qr_text
from .screen_text import COMMANDS, VIEWS, diagnostics_text, status_text

if TYPE_CHECKING:  # imported when needed only: Tk is optional
    from .gui import TkView

POLL = 'touchscreen_poll'
ADMIN = 'touchscreen_admin'


class TouchscreenMain(RobotHead):
    """The GUI head: the model, the requests and the view."""

    def birth(self) -> None:
        app = self.application
        self.config = app.config
        self.section = s = self.config[cfg.TOUCHSCREEN]
        self.events = Events(app.as_json)
        self.count = app.count
        self.reachable: bool | None = None
        self.unreachable_reason = ''
        self.status: dict | None = None
        self.diag: dict | None = None
        self.link: dict | None = None
        self.admin_results: list[dict] = []
        self.exchanges = {'status': 0, 'diagnostics': 0}
        self.inflight: dict[str, float] = {}
        self.due = {'status': 0.0, 'diagnostics': 0.0}
        self.subscribed = False
        if self.node is not None:
            cfg.declare_parameters(self.node, self.config, cfg.TOUCHSCREEN)
        bridge = link.ros_bridge_ready(self)
        if s['transport'] == 'ros' and not bridge:
            self.logger.error('transport is ros but the ROS bridge is not available here: '
                              'requests to the service cannot leave this application')
        try:
            self.qr = qr_matrix(s['qr_uri'])
        except Exception as exc:  # noqa: BLE001 - e.g. qrcode missing: the rest still works
            self.qr = None
            self.logger.error('no QR code: %s', exc)
        self.view = self._make_view(app.headless, app.read_stdin)
        self.headless = isinstance(self.view, HeadlessView)
        self.events.emit('started', f'started ({"headless" if self.headless else "Tk window"}, '
                         f'transport {s["transport"]}, pid {os.getpid()})',
                         headless=self.headless, transport=s['transport'], ros_bridge=bridge,
                         ros=self.node is not None, pid=os.getpid())
        text = f'pair a mobile device with {s["qr_uri"]}'
        if self.qr and self.headless and not app.as_json:
            text += '\n' + qr_text(self.qr)
        self.events.emit('qr', text, uri=s['qr_uri'], modules=len(self.qr) if self.qr else 0)
        self.view.refresh()

    def _make_view(self, headless: str, read_stdin: bool) -> HeadlessView | TkView:
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
        return HeadlessView(self, read_stdin)

    # -- the loop ------------------------------------------------------------------------
    def life(self) -> None:
        now = time.monotonic()
        s = self.section
        for tag, period in (('status', s['status_period']),
                            ('diagnostics', s['diagnostics_period'])):
            if now >= self.due[tag] and self.request(tag, tag, via=POLL):
                self.due[tag] = now + period
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

    @message_filter(subject='result')
    def on_result(self, message: dict) -> None:
        """Take a carrier's outcome into the model, report it and refresh the view."""
        result = message['body']
        tag = result['tag']
        self.inflight.pop(tag, None)
        if tag == 'status':
            self._on_status(result)
        elif tag == 'diagnostics':
            if result['ok']:
                self.diag = result['body']
                self.exchanges['diagnostics'] += 1
                self.events.emit('diagnostics', f'diagnostics: {diagnostics_text(self.diag)}',
                                 level=self.diag.get('level'), seconds=result['seconds'],
                                 exchanges=self.exchanges['diagnostics'])
            elif not result.get('reachable', False):
                self._set_reachable(False, result['error'])
        elif tag == 'subscribe':
            self.subscribed = result['ok']
            if result['ok'] and result['body'].get('link'):
                self.link = result['body']['link']
        else:
            self.admin_results.append(result)
            del self.admin_results[:-20]
            ok = result['ok']
            what = result['subject']
            text = (f'{what}: ok: {json.dumps(result.get("body"), default=str)[:300]}' if ok
                    else f'{what}: failed: {result.get("error")}')
            self.events.emit('admin', text, subject=what, ok=ok, body=result.get('body'),
                             error=result.get('error'))
        self._check_done()
        self.view.refresh()

    def _on_status(self, result: dict) -> None:
        if not result['ok']:
            self._set_reachable(False, result['error'])
            return
        theirs = (result['body'] or {}).get('namespace')
        if theirs != self.application.namespace:  # never take another robot's service for ours
            self._set_reachable(False, f'the service that answered belongs to another robot '
                                       f'(namespace {theirs!r}, not {self.application.namespace!r})')
            return
        self.status = result['body']
        self.exchanges['status'] += 1
        self._set_reachable(True, '')
        if (self.status or {}).get('link'):
            self.link = self.status['link']
        self.events.emit('status', f'status #{self.exchanges["status"]}: '
                         f'{status_text(self.status)}',
                         exchanges=self.exchanges['status'], seconds=result['seconds'],
                         service_pid=self.status.get('pid'),
                         heads={h['name']: h['state'] for h in self.status.get('heads', [])})

    def _set_reachable(self, reachable: bool, reason: str) -> None:
        if reachable == self.reachable and (reachable or reason == self.unreachable_reason):
            return
        self.reachable = reachable
        self.unreachable_reason = reason
        if reachable:
            pid = (self.status or {}).get('pid')
            self.events.emit('reachable', f'service reachable (pid {pid}, transport '
                             f'{self.section["transport"]})', service_pid=pid)
            self.subscribed = False
            self.request('subscribe', 'subscribe', via=POLL)
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
        if self.count and min(self.exchanges.values()) >= self.count and not self.stopping:
            self.events.emit('done', f'{self.count} status and diagnostics exchanges done',
                             exchanges=dict(self.exchanges))
            self.application.shutdown(f'--count {self.count} reached')

    # -- commands (stdin in headless mode) ---------------------------------------------------
    @message_filter(subject='ui_command')
    def on_command(self, message: dict) -> None:
        """Carry out one command line (see COMMANDS)."""
        words = str(message['body']).split()
        verb, args = words[0].lower(), words[1:]
        one = args[0] if args else None
        if verb == 'quit':
            self.application.shutdown('quit')
        elif verb == 'help':
            self.events.emit('help', 'commands: ' + '; '.join(f'{k} - {v}'
                                                              for k, v in COMMANDS.items()))
        elif verb == 'view' and one in VIEWS:
            self.show(one)
        elif verb in ('status', 'diagnostics', 'heads', 'network', 'updates'):
            self.admin(verb)
        elif verb in ('start', 'stop', 'restart') and one:
            self.admin(f'{verb}_head', {'head': one})
        elif verb in ('schedule', 'unschedule') and one:
            self.admin(verb, {'action': one})
        elif verb in ('idle', 'busy'):
            self.admin('robot_idle', {'idle': verb == 'idle'})
        else:
            self.events.emit('error', f'unknown command {message["body"]!r} (try help)')

    def show(self, name: str) -> None:
        """Switch views; the 'view' event follows once the view is on screen."""
        self.view.show(name)
        if self.headless:
            self.shown(name)

    def shown(self, name: str) -> None:
        """Report that the view name is on screen."""
        self.events.emit('view', f'view: {name}', view=name)


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
    p.add_argument('--transport', choices=('uds', 'ros', ''),
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


if __name__ == '__main__':
    cli_main()
