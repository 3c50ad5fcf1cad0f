"""An application: a main head in the calling thread, supervising its sub-heads.

``run()`` builds the application (``build()`` adds the sub-heads), makes what all heads share
(the directory of inboxes in a private run directory, this process's bus, the fork server
before any rclpy context, this process's rclpy host), then runs the main head in the calling
thread with a :class:`~polycephaly_ros.runtime.HeadRuntime`, like every other head; the main
head starts the sub-heads once its birth() is done and stops them before its death()
(:class:`~polycephaly_ros.supervisor.Supervisor`).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import threading
from typing import Any, Callable

from . import directory as dirs
from . import fork_server
from . import logs
from . import envelope as env
from . import restart as restart_policy
from .bus import MAX_ENVELOPE, Bus
from .compat import APPLICATION_OPTIONS
from .errors import EXIT_CONFIG, ConfigurationError, PolycephalyError, StateError
from .head import Process, check_frequency
from .inbox import Inbox
from .ros.discovery_server import checked_option as discovery_server_option
from .routes.base import RouteHead
from .runtime import TEARDOWN_LIMIT, HeadRuntime, Settings
from .sd_notify import Notifier
from .signals import SignalRelay
from .spec import PROCESS, HeadSpec, checked_name, head_class, head_spec
from .supervisor import Supervisor

_log = logging.getLogger('polycephaly_ros.application')
#: The queue size that queue_size=0 (the seed's "unbounded") stands for: the most a POSIX
#: semaphore counts. Memory is the limit then.
UNBOUNDED = 2**31 - 1
#: What stop() and restart() call back when given one: with None, or the error.
Done = Callable[['PolycephalyError | None'], None]


class Application:
    """A main head plus sub-heads that run as threads or processes; subclass it and override build().

    Raises ConfigurationError, naming the option, for a bad option. The seed's option names
    (``queueSize``, ``queueType``, ``forceStop``, ``threadsTimeout``) are accepted too
    (:mod:`polycephaly_ros.compat`).
    """

    def __init__(
        self,
        main: Any = None,
        *args: Any,
        name: str = 'main',
        ppill: str | None = None,
        queue_size: int = 1000,
        queue_type: str = 'fifo',
        frequency: float | None = None,
        force_stop: bool = False,
        threads_timeout: float = 30.0,
        send_timeout: float = 2.0,
        max_envelope: int = MAX_ENVELOPE,
        private_shared_memory: bool = True,
        namespace: str = '',
        start_method: str = 'forkserver',
        ros: bool | None = None,
        handle_signals: bool = True,
        parallel_start: bool = False,
        discovery_server: str | None = None,
        head_control: bool = True,
        ros_args: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._main_target = head_class(main) if main is not None else Process
        #: What the main head finds in self.args and self.kwargs (as the seed passes them).
        self.main_args, self.main_kwargs = args, kwargs
        for key in kwargs:
            near = difflib.get_close_matches(key, _OPTIONS, n=1)
            if near:
                _log.warning('%r is no option of Application(): it goes to the main head\'s '
                             'kwargs (did you mean %r?)', key, near[0])
        self.main_name = checked_name(name)
        self.poison_pill = ppill if ppill is not None else env.new_id()
        if not isinstance(self.poison_pill, str) or not self.poison_pill:
            raise ConfigurationError(f'the poison pill must be non-empty text, not {ppill!r}')
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
            raise ConfigurationError(f'queue_size must be a whole number >= 0 (0: unbounded), '
                                     f'not {queue_size!r}')
        self.queue_size = queue_size or UNBOUNDED
        kind = str(queue_type).lower()
        if kind not in ('fifo', 'priority'):
            raise ConfigurationError(f'queue_type must be "fifo" or "priority", not {queue_type!r}')
        self.queue_type = kind
        self._main_frequency = None if frequency is None else check_frequency(frequency)
        self.force_stop = bool(force_stop)
        if not threads_timeout > 0:
            raise ConfigurationError(f'threads_timeout must be > 0 s, not {threads_timeout!r}')
        self.threads_timeout = float(threads_timeout)
        self.send_timeout = float(send_timeout)
        if isinstance(max_envelope, bool) or not isinstance(max_envelope, int) or max_envelope < 1:
            raise ConfigurationError(f'max_envelope must be a number of bytes >= 1, not '
                                     f'{max_envelope!r}')
        self.max_envelope = max_envelope
        #: Make the Fast DDS shared-memory segments of this user's processes readable by this
        #: user only (ros/shared_memory.py).
        self.private_shared_memory = bool(private_shared_memory)
        self.namespace = namespace
        if start_method not in ('forkserver', 'spawn'):
            raise ConfigurationError(
                f'start_method must be "forkserver" or "spawn", not {start_method!r}: a process '
                'forked from one where rclpy runs does not work')
        self.start_method = start_method
        self._ros = ros
        self._handle_signals = handle_signals
        #: Start the autostart heads together instead of each after the previous one's birth().
        self.parallel_start = bool(parallel_start)
        #: None (simple discovery), "start" or "host:port" (ros/discovery_server.py).
        self.discovery_server = discovery_server_option(discovery_server)
        #: With ROS, the main head's node serves ~/list_heads, ~/start_head, ~/stop_head and
        #: ~/restart_head (ros/head_control.py).
        self.head_control = bool(head_control)
        if ros_args is not None and (isinstance(ros_args, str) or
                                     not all(isinstance(a, str) for a in ros_args)):
            raise ConfigurationError(f'ros_args must be a list of strings, not {ros_args!r}')
        #: rclpy.init's arguments in every process of the application (None: sys.argv, as a
        #: plain rclpy program), e.g. ['--ros-args', '--log-level', 'debug'].
        self.ros_args = None if ros_args is None else list(ros_args)
        self._global_frequency = 10.0
        self._specs: dict[str, HeadSpec] = {}
        self._started = False
        self._supervisor: Supervisor | None = None
        self._main_head: Process | None = None
        self._main_thread: int | None = None
        self._stopping = False
        self._everyone = False
        #: Why the application stopped (None for an ordinary stop).
        self.reason: str | None = None
        #: What run() returns: 0 after an orderly stop, 1 after an emergency or a failure.
        self.exit_code = 0
        self._main_runtime: HeadRuntime | None = None
        #: Readiness, status, watchdog and stopping for systemd (sd_notify.py).
        self._systemd = Notifier()

    # -- building --------------------------------------------------------------------
    def build(self) -> None:
        """Add the sub-heads; override it (run() calls it once)."""

    def global_frequency(self, i: float | None = None) -> float:
        """Return the frequency of heads without their own, or set it when i is given."""
        if i is not None:
            self._global_frequency = check_frequency(i)
        return self._global_frequency

    def add_process(
        self,
        ref: Any,
        *args: Any,
        name: str | None = None,
        mode: str = 'thread',
        frequency: float | None = None,
        autostart: bool = True,
        bound_shutdown: bool = True,
        restart: str = 'never',
        max_restarts: int = 3,
        restart_window: float = 10.0,
        restart_backoff: tuple[float, float] = restart_policy.BACKOFF,
        let_it_crash: bool | None = None,
        **kwargs: Any,
    ) -> HeadSpec:
        """Add a sub-head; positional and unknown keyword arguments reach it as args/kwargs.

        mode is "thread" or "process" (any case); restart is "never", "on_failure" or
        "always", at most max_restarts within restart_window seconds, each after a wait
        doubling from restart_backoff[0] up to restart_backoff[1] seconds; let_it_crash=True
        ends the head when a filter raises (default: the class's ``let_it_crash``, False: the
        error is logged, counted and answered); bound_shutdown=False
        lets the head finish on its own when the application stops (within threads_timeout).
        Raises ConfigurationError naming a bad option or name, StateError once the
        application runs.
        """
        if self._started:
            raise StateError('add heads in build() or before run()')
        spec = head_spec(ref, args, kwargs, name=name, mode=mode, frequency=frequency,
                         autostart=autostart, bound_shutdown=bound_shutdown, restart=restart,
                         max_restarts=max_restarts, restart_window=restart_window,
                         restart_backoff=restart_backoff, let_it_crash=let_it_crash)
        if spec.name in self._specs or spec.name == self.main_name:
            raise ConfigurationError(f'there is already a head named {spec.name!r}')
        self._specs[spec.name] = spec
        return spec

    # -- running ---------------------------------------------------------------------
    def run(self) -> int:
        """Build, start the heads, run the main head in this thread until the end; return exit code.

        Returns 0 after an orderly stop, 1 after an emergency brake or a failure, 78
        (EXIT_CONFIG) when a head cannot run as configured (see ``reason``). Raises StateError when called twice, ConfigurationError for a bad head.
        """
        if self._started:
            raise StateError('an Application runs once; make a new one')
        self.build()
        remote = self._remote_names()
        self._started = True
        self._main_thread = threading.get_ident()
        if self._ros is None:
            from .ros.host import ros_available

            use_ros = ros_available()
        else:
            use_ros = self._ros
        managed = [name for name, spec in self._specs.items() if spec.lifecycle is not None]
        if managed and not use_ros:
            raise ConfigurationError(f'head(s) {", ".join(managed)} are managed nodes (their '
                                     'class sets lifecycle): they need ROS')
        through_rclpy = logs.choose(use_ros, self.namespace, self.main_name)
        try:
            return self._run(use_ros, through_rclpy, remote)
        finally:
            logs.release(through_rclpy)

    def _run(self, use_ros: bool, ros_logging: bool, remote: dict[str, str]) -> int:
        root = logging.getLogger()
        context = mp.get_context(self.start_method)
        log_queue = context.SimpleQueue()  # (no feeder thread: nothing to flush at a head's exit)
        settings = Settings(self.poison_pill, self.main_name, self.namespace, use_ros,
                            self.send_timeout, self.queue_type == 'priority',
                            root.getEffectiveLevel(), log_queue, self.threads_timeout,
                            self.max_envelope, self.private_shared_memory,
                            ros_args=list(sys.argv if self.ros_args is None else self.ros_args),
                            ros_logging=ros_logging)
        # Everything made below is closed in reverse order, however run() ends; rclpy last, as
        # its teardown may hang (and then ends the process) once nothing else is left to clean.
        with contextlib.ExitStack() as ends, contextlib.ExitStack() as made:
            # Process heads' log records, handled here as this process's own.
            records = logs.Relay(log_queue)
            records.start()
            made.callback(log_queue.close)
            made.callback(records.stop)
            relay = made.enter_context(SignalRelay(self._on_signal)) if self._handle_signals \
                else None
            if self.start_method == 'forkserver' and any(
                    s.mode == PROCESS for s in self._specs.values()):
                fork_server.ensure_running(use_ros)  # before rclpy starts here
            host = None
            if use_ros:
                from .ros import shared_memory
                from .ros import native
                from .ros.host import RclpyHost

                shared_memory.remove_stale()  # what SIGKILLed processes left in /dev/shm
                settings.discovery_server = self._discovery_address(made)
                host = RclpyHost(self.namespace, self.private_shared_memory,
                                 settings.discovery_server, settings.ros_args)
                made.callback(host.shutdown)
                # From here to the end of run(), the teardown is bounded as a whole, as a head
                # process's is: a node finalised late in another thread (rclpy defers it while
                # a handle is in use) can deadlock in Fast DDS with the GIL held. Then a C
                # timer ends the process TEARDOWN_LIMIT later, with the exit code decided.
                made.callback(lambda: native.exit_after(TEARDOWN_LIMIT, self.exit_code))
                ends.callback(native.exit_after, 0, 0)
            directory, listeners, rundir = dirs.create(
                [self.main_name, *self._specs], self.queue_size, context, remote=remote,
                routes=[n for n, s in self._specs.items() if issubclass(s.target, RouteHead)])
            made.callback(shutil.rmtree, rundir, True)
            for sock in listeners.values():
                made.callback(sock.close)
            bus = self.bus = Bus(directory, self.send_timeout, self.max_envelope)
            made.callback(bus.close)
            inbox = Inbox(listeners[self.main_name], directory[self.main_name].slots,
                          priority=settings.priority, poison_pill=self.poison_pill)
            made.callback(inbox.close)
            self._supervisor = Supervisor(
                self._specs, directory=directory, listeners=listeners, bus=bus, main_inbox=inbox,
                host=host, settings=settings, start_method=self.start_method,
                global_frequency=lambda: self._global_frequency, give_up=self._brake,
                should_stop=lambda: self._stopping)
            made.callback(self._supervisor.close)
            if relay is not None:
                relay.attach(inbox)
            self._systemd.attach(inbox, self._supervisor.status)
            runtime = self._main_runtime = HeadRuntime(
                self._make_main, name=self.main_name, bus=bus, inbox=inbox, settings=settings,
                frequency=self._main_frequency or self._global_frequency, host=host,
                on_control=self._on_main_control, args=self.main_args, kwargs=self.main_kwargs,
                node_services=self._main_target.node_services is not False)
            directory.set_running(self.main_name, True)
            error = runtime.run(after_birth=lambda: self._begin(runtime, host),
                                before_death=self._stop_heads)
            if error is not None:
                self.exit_code = EXIT_CONFIG if runtime.fatal else 1
                self.reason = self.reason or f'the main head failed: {error.strip().splitlines()[-1]}'
                _log.error('the main head failed:\n%s', error)
        if self.reason:
            log = _log.error if self.exit_code else _log.info
            log('application stopped: %s', self.reason)
        return self.exit_code

    def _discovery_address(self, made: contextlib.ExitStack) -> str | None:
        """Return the discovery server's address (starting one if asked), or None."""
        if self.discovery_server is None:
            return None
        previous = os.environ.get('ROS_DISCOVERY_SERVER')  # (this process's, set by the host)
        made.callback(lambda: os.environ.pop('ROS_DISCOVERY_SERVER', None) if previous is None
                      else os.environ.__setitem__('ROS_DISCOVERY_SERVER', previous))
        if self.discovery_server != 'start':
            return self.discovery_server
        from .ros import discovery_server

        address, close = discovery_server.start()
        made.callback(close)  # (after the last participant of this process is gone)
        return address

    def _begin(self, runtime: HeadRuntime, host: Any) -> None:
        """Once the main head is born: serve head control over ROS, start the sub-heads."""
        if host is not None and self.head_control:
            from .ros.head_control import HeadControl

            runtime.own(HeadControl(self, runtime, host.executor).close, 'head control')
        self._supervisor.start_autostart(self.parallel_start)
        self._systemd.ready()

    def _make_main(self) -> Process:
        head = self._main_head = self._main_target()
        head.application = self
        if self._stopping:  # a signal came during the set-up
            head.die()
        return head

    def _remote_names(self) -> dict[str, str]:
        """Return outside name -> route head for the remote names the route heads list."""
        remote: dict[str, str] = {}
        for spec in self._specs.values():
            if not issubclass(spec.target, RouteHead):
                continue
            for outside in spec.target.configure(spec.kwargs):
                if outside in self._specs or outside == self.main_name:
                    raise ConfigurationError(f'route head {spec.name!r} lists remote name '
                                             f'{outside!r}, which is a head of this application')
                if remote.setdefault(outside, spec.name) != spec.name:
                    raise ConfigurationError(f'remote name {outside!r} is listed by route heads '
                                             f'{remote[outside]!r} and {spec.name!r}')
        return remote

    def _stop_heads(self) -> None:
        self._systemd.stopping(self.reason)  # (also when the main head just died)
        supervisor = self._supervisor
        live = [n for n, h in supervisor.handles.items() if h.state != 'stopped']
        bound = [n for n in live if self._everyone or self._specs[n].bound_shutdown]
        supervisor.shutdown(bound, [n for n in live if n not in bound], self.threads_timeout,
                            serve=self._main_head._serve_while_stopping)

    def _on_main_control(self, envelope: dict) -> None:
        subject = envelope['subject']
        if subject == env.BORN:
            self._supervisor.on_born(envelope)
        elif subject == env.EXITED:
            self._supervisor.on_report(envelope)
        elif subject == env.LIFECYCLE:
            self._supervisor.on_lifecycle(envelope)
        elif subject == env.EBRAKE:
            self._brake(f'emergency brake from {envelope.get("sender")!r}: '
                        f'{envelope.get("body") or "no reason given"}')
        elif subject == self.poison_pill:
            self.shutdown(f'poison pill from {envelope.get("sender")!r}')
        if subject in (env.BORN, env.EXITED):
            self._systemd.update()

    def _brake(self, reason: str, code: int = 1) -> None:
        self._everyone = True
        self.exit_code = code
        self.reason = reason
        self._systemd.failed(reason)  # (its watchdog pings stop)
        self.shutdown(reason)

    def _on_signal(self, signum: int) -> None:
        """Take SIGINT/SIGTERM, relayed to the main head's loop (signals.py)."""
        what = signal.Signals(signum).name
        if not self._stopping:
            self.shutdown(f'received {what}')
        elif self.force_stop:
            _log.warning('received %s again: force_stop is on, killing every head now', what)
            self._supervisor.kill_all()
        else:
            _log.warning('received %s again: already stopping (force_stop is off, so the heads '
                         'get up to %g s)', what, self.threads_timeout)

    # -- control, from the main head's thread ----------------------------------------------
    def shutdown(self, reason: str | None = None) -> None:
        """Ask the application to stop in order; safe from any thread.

        A stop asked while the sub-heads are still starting stops the start-up: the heads
        already started stop in order and the others never start.
        """
        if not self._stopping:
            self._stopping = True
            if reason and not self.reason:
                self.reason = reason
            self._systemd.stopping(self.reason)
        if self._main_head is not None:
            self._main_head.die()

    def start(self, name: str, done: Done | None = None) -> None:
        """Start a stopped head and wait until its birth() is done (up to threads_timeout).

        With done it returns at once and done() is called from the main head's loop once the
        head was born: done(None), or done(StateError) when it ended before. Raises
        UnknownHead, StateError when it runs already or the call is not made from the main
        head's thread while the application runs.
        """
        supervisor = self._control()
        if done is None:
            supervisor.start(name)
        else:
            supervisor.start(name, lambda: done(self._start_error(name)))

    def _start_error(self, name: str) -> StateError | None:
        """Return why a head that was started is not running now, or None if it runs."""
        head = next(h for h in self._control().status() if h['name'] == name)
        if head['state'] == 'running':
            return None
        return StateError(f'head {name!r} ended while starting: {head["last_error"] or "no error"}')

    def stop(self, name: str, done: Done | None = None) -> None:
        """Stop one head (poison pill, then terminate and kill after threads_timeout).

        Without done it returns once the head ended; with done it returns at once and
        done(None) is called from the main head's loop once the head ended, so the main head
        goes on answering meanwhile. Raises UnknownHead, or StateError when not called from
        the main head's thread.
        """
        if done is None:
            self._control().stop([name], self.threads_timeout)
        else:
            self._control().stop_soon(name, self.threads_timeout, lambda: done(None))

    def restart(self, name: str, done: Done | None = None) -> None:
        """Stop a head if it runs, then start it again; raises what stop() and start() raise.

        With done, stopping does not wait (see stop()); the head starts again, then done() is
        called with None, or with the PolycephalyError that kept it from starting.
        """
        supervisor = self._control()
        if done is None:
            supervisor.stop([name], self.threads_timeout)
            supervisor.start(name)
            return

        def start_again() -> None:
            try:
                self.start(name, done)
            except PolycephalyError as exc:
                done(exc)
        supervisor.stop_soon(name, self.threads_timeout, start_again)

    def change_state(self, name: str, transition: str) -> None:
        """Ask a managed head for a lifecycle transition; status() shows the state it leads to.

        transition is configure, activate, deactivate, cleanup or shutdown; it runs in the
        head's thread, after this returns (ros/lifecycle.py). Raises UnknownHead, or
        StateError for an unmanaged or stopped head, an unknown transition, or a call from
        elsewhere than the main head's thread.
        """
        self._control().change_state(name, transition)

    def status(self) -> list[dict]:
        """Return the state of every sub-head; raises StateError outside the main head's thread."""
        return self._control().status()

    @property
    def lost(self) -> dict[str, int]:
        """Return, per head, how many accepted envelopes it left unhandled or lost so far.

        Every envelope whose send() returned is handled by its recipient's filters or counted
        here (and logged with its subject where known), whatever stopped the head.
        """
        lost = {h['name']: h['lost'] for h in self._supervisor.status()} if self._supervisor \
            else {}
        runtime = self._main_runtime
        lost[self.main_name] = len(runtime.unhandled) if runtime is not None else 0
        return lost

    @property
    def main(self) -> Process | None:
        """Return the main head (while the application runs)."""
        return self._main_head

    def _control(self) -> Supervisor:
        if self._supervisor is None or self._main_thread != threading.get_ident():
            raise StateError("control heads from the main head's thread while the application runs")
        return self._supervisor


#: The option names of Application() (ours and the seed's): a close miss is warned about.
_OPTIONS = [*(name for name, p in inspect.signature(Application.__init__).parameters.items()
              if p.kind is p.KEYWORD_ONLY), *APPLICATION_OPTIONS]
