"""Start, watch, restart and stop the sub-heads of an application (runs in the main thread).

Restart policies follow Erlang/OTP supervisors: ``never`` (temporary), ``on_failure``
(transient) and ``always`` (permanent), with at most ``max_restarts`` restarts of a head
within ``restart_window`` seconds; one more failure gives up and stops the application.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import envelope as env
from .bus import Bus
from .directory import Directory
from .errors import StateError, UnknownHead
from .head import Process
from .inbox import Inbox
from .runtime import Settings, run_process_head, run_thread_head

if TYPE_CHECKING:
    from .ros.host import RclpyHost

THREAD = 'thread'
PROCESS = 'process'
MODES = {'thread': THREAD, 'threaded': THREAD, 't': THREAD,
         'process': PROCESS, 'forked': PROCESS, 'fork': PROCESS, 'p': PROCESS}
RESTART_POLICIES = ('never', 'on_failure', 'always')
_log = logging.getLogger('polycephaly_ros.supervisor')


@dataclass
class HeadSpec:
    """How to build and run one sub-head."""

    name: str
    target: type[Process]
    args: tuple
    kwargs: dict
    mode: str
    frequency: float | None
    autostart: bool
    bound_shutdown: bool
    restart: str
    max_restarts: int
    restart_window: float


@dataclass
class _Handle:
    spec: HeadSpec
    inbox: Inbox | None = None          # thread heads: kept across restarts
    generation: int = 0
    state: str = 'stopped'              # stopped, running, stopping
    process: Any = None
    thread: threading.Thread | None = None
    stop_requested: bool = False
    reports: dict = field(default_factory=dict)
    restarts: deque = field(default_factory=deque)
    born: int = 0                       # the generation whose birth() completed
    exits: int = 0
    last_error: str | None = None


class Supervisor:
    """Own the sub-heads of one application. Every method runs in the main head's thread."""

    def __init__(self, specs: dict[str, HeadSpec], *, directory: Directory, listeners: dict,
                 bus: Bus, main_inbox: Inbox, host: RclpyHost | None, settings: Settings,
                 start_method: str, global_frequency: Callable[[], float],
                 give_up: Callable[[str], None],
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        self.handles = {name: _Handle(spec) for name, spec in specs.items()}
        self._directory = directory
        self._listeners = listeners
        self._bus = bus
        self._main_inbox = main_inbox
        self._host = host
        self._settings = settings
        self._context = mp.get_context(start_method)
        self._global_frequency = global_frequency
        self._give_up = give_up
        self._should_stop = should_stop  # a stop was asked: start no more heads
        self._lifeline_r, self._lifeline_w = mp.Pipe(duplex=False)
        self.stopping = False
        self.forced = False
        for name, handle in self.handles.items():
            if handle.spec.mode == THREAD:
                handle.inbox = Inbox(listeners[name], directory[name].slots,
                                     priority=settings.priority, poison_pill=settings.poison_pill)

    # -- starting --------------------------------------------------------------------
    def start_autostart(self) -> None:
        """Start every autostart head, in the order they were added, until a stop is asked."""
        for name, handle in self.handles.items():
            if self._should_stop():
                _log.info('stop asked during start-up: heads from %r on are not started', name)
                return
            if handle.spec.autostart:
                self.start(name)

    def start(self, name: str) -> None:
        """Start a stopped head and wait (up to threads_timeout) until its birth() is done.

        Raises UnknownHead for a name that is no sub-head, StateError when it is not stopped.
        """
        handle = self._handle(name)
        if handle.state != 'stopped':
            raise StateError(f'head {name!r} is already {handle.state}')
        spec = handle.spec
        handle.generation += 1
        handle.stop_requested = False
        frequency = spec.frequency or self._global_frequency()
        self._directory.set_running(name, True)
        if spec.mode == THREAD:
            handle.thread = threading.Thread(
                target=run_thread_head, name=f'head:{name}', daemon=True,
                args=(spec, handle.inbox, frequency, handle.generation, self._bus, self._host,
                      self._settings))
            handle.thread.start()
        else:
            process = self._context.Process(
                target=run_process_head, name=f'polycephaly:{name}',
                args=(spec, frequency, handle.generation, self._directory,
                      self._listeners[name], self._lifeline_r, self._settings))
            process.start()
            handle.process = process
            self._main_inbox.watch(process.sentinel,
                                   lambda _fd, h=handle, p=process: self._on_sentinel(h, p))
        handle.state = 'running'
        deadline = time.monotonic() + self._settings.start_timeout
        while (handle.state == 'running' and handle.born != handle.generation
               and not self._should_stop()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _log.warning('head %r was not born within %g s; going on', name,
                             self._settings.start_timeout)
                break
            self._main_inbox.poll(remaining, ignore_queued=True)
        _log.info('started head %r (%s, generation %d)', name, spec.mode, handle.generation)

    # -- stopping --------------------------------------------------------------------
    def stop(self, names: list[str], timeout: float) -> None:
        """Stop heads in parallel: poison pill, then terminate, then kill after timeout.

        Raises UnknownHead for a name that is no sub-head.
        """
        targets = [h for h in map(self._handle, names) if h.state != 'stopped']
        self._request_stop(targets)
        self._wait(targets, timeout)
        self._escalate(targets, timeout)

    def shutdown(self, bound: list[str], unbound: list[str], timeout: float,
                 serve: Callable[[], Any] | None = None) -> None:
        """Stop the application's heads: bound ones now, unbound ones when they end or time out.

        serve() is called whenever mail arrives meanwhile, so the main head keeps answering
        the heads that still run.
        """
        self.stopping = True
        bound_handles = list(map(self._handle, bound))
        unbound_handles = list(map(self._handle, unbound))
        self._request_stop(bound_handles)
        self._wait(bound_handles + unbound_handles, timeout, serve)
        self._escalate(bound_handles, timeout)
        self.stop([h.spec.name for h in unbound_handles], 2.0)

    def _request_stop(self, handles: list[_Handle]) -> None:
        for handle in handles:
            handle.stop_requested = True
            handle.state = 'stopping'
            self._poison(handle)

    def _escalate(self, handles: list[_Handle], timeout: float) -> None:
        """Terminate, then kill, the heads still running after timeout; abandon such threads."""
        late = [h for h in handles if h.state != 'stopped']
        for handle in late:
            if handle.spec.mode == PROCESS:
                _log.error('head %r did not stop within %g s: terminating it',
                           handle.spec.name, timeout)
                handle.process.terminate()
        self._wait(late, 2.0)
        for handle in late:
            if handle.state == 'stopped':
                continue
            if handle.spec.mode == PROCESS:
                _log.error('head %r ignored SIGTERM: killing it', handle.spec.name)
                handle.process.kill()
                handle.process.join(5.0)
                self._wait([handle], 1.0)
                if handle.state != 'stopped':  # its sentinel was not seen: close it out here
                    self._main_inbox.unwatch(handle.process.sentinel)
                    self._on_exit(handle, True, 'killed')
            else:
                _log.error('thread head %r did not stop within %g s; abandoning it',
                           handle.spec.name, timeout)
                self._on_exit(handle, True, 'abandoned: did not stop in time')

    def kill_all(self) -> None:
        """Kill every head process at once (a forced stop)."""
        self.forced = True
        for handle in self.handles.values():
            if handle.process is not None and handle.process.is_alive():
                handle.process.kill()

    def _poison(self, handle: _Handle) -> None:
        name = handle.spec.name
        pill = env.make(self._settings.main, name, self._settings.poison_pill,
                        {'generation': handle.generation})
        try:
            self._bus.post(pill, control=True)
        except Exception as exc:
            _log.error('could not send the poison pill to %r: %s', name, exc)

    def _wait(self, handles: list[_Handle], timeout: float,
              serve: Callable[[], Any] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while any(h.state != 'stopped' for h in handles) and not self.forced:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._main_inbox.poll(remaining, ignore_queued=serve is None) and serve:
                serve()

    def close(self) -> None:
        """Release what the supervisor holds (after every head stopped)."""
        for handle in self.handles.values():
            if handle.inbox is not None:
                handle.inbox.close()
        self._lifeline_w.close()
        self._lifeline_r.close()

    # -- exits -----------------------------------------------------------------------
    def on_born(self, envelope: dict) -> None:
        """Take a head's word that its birth() is done."""
        handle = self.handles.get(envelope.get('sender'))
        if handle is not None:
            handle.born = (envelope.get('body') or {}).get('generation', 0)

    def on_report(self, envelope: dict) -> None:
        """Take a head's report of its end (a control envelope)."""
        handle = self.handles.get(envelope.get('sender'))
        body = envelope.get('body') or {}
        if handle is None or body.get('generation') != handle.generation:
            return
        if handle.spec.mode == THREAD:
            handle.thread.join()
            self._on_exit(handle, body.get('error') is not None, body.get('error'))
        else:
            handle.reports[handle.generation] = body.get('error')

    def _on_sentinel(self, handle: _Handle, process: Any) -> None:
        self._main_inbox.unwatch(process.sentinel)
        process.join()
        self._main_inbox.poll(0.0)  # take the head's own report, written before it exited
        if handle.process is not process:
            return
        error = handle.reports.pop(handle.generation, None)
        code = process.exitcode
        failed = code != 0 or error is not None
        if failed and error is None:
            error = (f'killed by signal {signal.Signals(-code).name}' if code < 0
                     else f'exited with code {code}')
        self._on_exit(handle, failed, error)

    def _on_exit(self, handle: _Handle, failed: bool, error: str | None) -> None:
        name = handle.spec.name
        handle.state = 'stopped'
        handle.exits += 1
        handle.last_error = error if failed else None
        self._directory.set_running(name, False)
        lost = self._reset_slots(handle) if handle.spec.mode == PROCESS else 0
        if handle.stop_requested or self.stopping:
            _log.info('head %r stopped', name)
            return
        if failed:
            _log.error('head %r failed: %s%s', name, (error or '').rstrip(),
                       f'\n{lost} envelope(s) queued for it were lost with it' if lost else '')
        else:
            _log.info('head %r ended', name)
        policy = handle.spec.restart
        if policy == 'always' or (policy == 'on_failure' and failed):
            self._restart_after_exit(handle)

    def _reset_slots(self, handle: _Handle) -> int:
        """Free the queue slots held by envelopes that died with a head process."""
        address = self._directory[handle.spec.name]
        try:
            lost = address.queue_size - address.slots.get_value()
        except NotImplementedError:  # pragma: no cover - macOS
            return 0
        for _ in range(max(lost, 0)):
            address.slots.release()
        return max(lost, 0)

    def _restart_after_exit(self, handle: _Handle) -> None:
        spec = handle.spec
        now = time.monotonic()
        while handle.restarts and now - handle.restarts[0] > spec.restart_window:
            handle.restarts.popleft()
        if len(handle.restarts) >= spec.max_restarts:
            self._give_up(f'head {spec.name!r} needed more than {spec.max_restarts} restart(s) '
                          f'within {spec.restart_window:g} s; last error: '
                          f'{(handle.last_error or "none").strip().splitlines()[-1]}')
            return
        handle.restarts.append(now)
        _log.warning('restarting head %r (%d of at most %d within %g s)', spec.name,
                     len(handle.restarts), spec.max_restarts, spec.restart_window)
        self.start(spec.name)

    # -- queries ---------------------------------------------------------------------
    def status(self) -> list[dict]:
        """Return each head's name, mode, state, generation, exits and last error."""
        return [{'name': h.spec.name, 'mode': h.spec.mode, 'state': h.state,
                 'generation': h.generation, 'exits': h.exits, 'last_error': h.last_error,
                 'pid': h.process.pid if h.process is not None else os.getpid()}
                for h in self.handles.values()]

    def _handle(self, name: str) -> _Handle:
        handle = self.handles.get(name.lower() if isinstance(name, str) else name)
        if handle is None:
            raise UnknownHead(f'no sub-head named {name!r}; sub-heads: {", ".join(self.handles)}')
        return handle
