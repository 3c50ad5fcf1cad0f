"""Start, watch, restart and stop the sub-heads of an application (runs in the main thread).

Heads start in the order added: all are made ready at once (their processes, rclpy nodes and
ROS inboxes come up in parallel, the costly part), then each runs birth() only after the
previous one's birth() returned (a stop asked meanwhile stops the start-up). An ended head is
restarted by its policy, after a backoff (:mod:`polycephaly_ros.restart`). A head process that
dies is noticed at once (its sentinel wakes the main head's loop); what it took with it is
counted exactly and its queue slots are given back (:mod:`polycephaly_ros.reclaim`) before
anything starts again. Every head's exit states how many accepted envelopes it left unhandled
or lost (``lost`` in status()).

A head process still running TEARDOWN_LIMIT after its death() (a hung DDS teardown) is ended by
its own alarm: that is logged, not counted as a failure. A head that does not stop within the
timeout gets SIGTERM, then SIGKILL; a thread head cannot be killed: it is abandoned (state
``abandoned``) and never started again. If the fork server itself dies, the next start
launches a new one.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import envelope as env
from . import fork_server
from .bus import Bus
from .directory import Directory
from .errors import EXIT_CONFIG, StateError, UnknownHead
from .inbox import Inbox
from .reclaim import Loss, nothing_held, reclaim
from .restart import RestartPolicy
from .runtime import (TEARDOWN_LIMIT, TEARDOWN_SIGNAL, Settings, run_process_head,
                      run_thread_head)
from .spec import PRIMARY, PROCESS, THREAD, TRANSITIONS, HeadSpec

if TYPE_CHECKING:
    from .ros.host import RclpyHost

_log = logging.getLogger('polycephaly_ros.supervisor')


@dataclass
class _Handle:
    spec: HeadSpec
    policy: RestartPolicy
    inbox: Inbox | None = None          # thread heads: kept across restarts
    generation: int = 0
    state: str = 'stopped'              # stopped, running, stopping, restarting, abandoned
    process: Any = None
    thread: threading.Thread | None = None
    stop_requested: bool = False
    reports: dict = field(default_factory=dict)  # process heads: generation -> EXITED body
    born: int = 0                       # the generation whose birth() completed
    exits: int = 0
    lost: int = 0                       # accepted envelopes it left unhandled or lost, in all
    restart_at: float | None = None     # when a restart is due (state restarting)
    last_error: str | None = None
    when_stopped: list = field(default_factory=list)  # stop_soon()'s callbacks
    when_born: list = field(default_factory=list)  # start()'s callbacks, with done
    lifecycle: str | None = None        # a managed head: its last reported lifecycle state
    goal: str | None = None             # ... and the state to drive each new run back to


class Supervisor:
    """Own the sub-heads of one application. Every method runs in the main head's thread."""

    def __init__(self, specs: dict[str, HeadSpec], *, directory: Directory, listeners: dict,
                 bus: Bus, main_inbox: Inbox, host: RclpyHost | None, settings: Settings,
                 start_method: str, global_frequency: Callable[[], float],
                 give_up: Callable[[str, int], None],
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        self.handles = {
            name: _Handle(spec, RestartPolicy(spec.restart, spec.max_restarts,
                                              spec.restart_window, spec.restart_backoff))
            for name, spec in specs.items()}
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
            handle.goal = handle.spec.lifecycle
            if handle.spec.mode == THREAD:
                handle.inbox = Inbox(listeners[name], directory[name].slots,
                                     priority=settings.priority, poison_pill=settings.poison_pill)

    # -- starting --------------------------------------------------------------------
    def start_autostart(self, parallel: bool = False) -> None:
        """Start every autostart head, in the order they were added, until a stop is asked.

        Every head is made ready at once (process, rclpy node, ROS inbox, filters: the costly
        part); then each runs birth() in turn, after the previous one's birth() returned or it
        ended (or start_timeout passed). In parallel, every birth() runs as soon as its head is
        ready, and this returns once every head was born or ended (or start_timeout passed).
        """
        started = []
        for name, handle in self.handles.items():
            if self._should_stop():
                _log.info('stop asked during start-up: heads from %r on are not started', name)
                break
            if handle.spec.autostart and self._launch(handle, gated=not parallel):
                started.append((handle, handle.generation))
        if parallel:
            self._await_births(started)
            return
        for handle, generation in started:
            if self._should_stop():
                _log.info('stop asked during start-up: heads from %r on are not born',
                          handle.spec.name)
                return
            if handle.generation == generation and handle.state == 'running':
                self._tell(handle, env.BEGIN)
                self._await_births([(handle, generation)])

    def _await_births(self, heads: list[tuple[_Handle, int]]) -> None:
        """Wait (up to start_timeout) until each head's generation was born or ended."""
        deadline = time.monotonic() + self._settings.start_timeout
        while not self._should_stop():
            waiting = [h for h, g in heads if h.generation == g and h.state == 'running'
                       and h.born != g]
            if not waiting:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for handle in waiting:
                    _log.warning('head %r was not born within %g s; going on',
                                 handle.spec.name, self._settings.start_timeout)
                break
            self._main_inbox.poll(remaining, ignore_queued=True)
        for handle, generation in heads:
            if handle.generation == generation:
                _log.info('started head %r (%s, generation %d)', handle.spec.name,
                          handle.spec.mode, generation)

    def start(self, name: str, done: Callable[[], None] | None = None) -> None:
        """Start a stopped head and wait (up to start_timeout) until its birth() is done.

        With done, return at once and call done() from the main head's loop once the head was
        born, ended, or was not born in time. Raises UnknownHead for a name that is no
        sub-head, StateError when it is not stopped (a pending restart is started now instead).
        """
        handle = self._handle(name)
        if handle.state == 'abandoned':
            raise StateError(f'head {name!r} was abandoned (its thread never ended), so it '
                             'cannot start again')
        if handle.state == 'restarting':
            handle.state, handle.restart_at = 'stopped', None
        if handle.state != 'stopped':
            raise StateError(f'head {name!r} is already {handle.state}')
        if not self._launch(handle, gated=False):
            if done is not None:
                self._main_inbox.call_later(0.0, done)
            return
        if done is None:
            self._await_births([(handle, handle.generation)])
            return
        handle.when_born.append(done)
        generation = handle.generation
        self._main_inbox.call_later(self._settings.start_timeout,
                                    lambda: self._born_late(handle, generation))

    def _launch(self, handle: _Handle, gated: bool) -> bool:
        """Start a stopped head's thread or process; False if it could not start.

        A gated head gets ready, then waits for a BEGIN control envelope before its birth().
        """
        spec = handle.spec
        handle.generation += 1
        handle.stop_requested = False
        frequency = spec.frequency or self._global_frequency()
        self._directory.set_running(spec.name, True)
        handle.state = 'running'
        if spec.mode == THREAD:
            handle.thread = threading.Thread(
                target=run_thread_head, name=f'head:{spec.name}', daemon=True,
                args=(spec, handle.inbox, frequency, handle.generation, self._bus, self._host,
                      self._settings, gated))
            handle.thread.start()
            return True
        return self._spawn(handle, frequency, gated)

    def _born_late(self, handle: _Handle, generation: int) -> None:
        """Call start()'s done callbacks of a head not born in time (it goes on starting)."""
        if handle.generation == generation and handle.when_born:
            _log.warning('head %r was not born within %g s; going on', handle.spec.name,
                         self._settings.start_timeout)
            self._call_soon(handle.when_born)

    def _call_soon(self, callbacks: list) -> None:
        """Empty callbacks and call each from the main head's loop, after what runs now."""
        waiting = callbacks[:]
        callbacks.clear()
        for done in waiting:
            self._main_inbox.call_later(0.0, done)

    def _spawn(self, handle: _Handle, frequency: float, gated: bool) -> bool:
        """Start a head process (a new fork server first if it died); False if it cannot."""
        name = handle.spec.name
        for attempt in (1, 2):
            if self._context.get_start_method() == 'forkserver':
                fork_server.ensure_running(self._settings.ros)  # (a dead one: started our way)
            process = self._context.Process(
                target=run_process_head, name=f'polycephaly:{name}',
                args=(handle.spec, frequency, handle.generation, self._directory,
                      self._listeners[name], self._lifeline_r, self._settings, gated))
            try:
                process.start()
                break
            except OSError as exc:
                if attempt == 2 or self._context.get_start_method() != 'forkserver':
                    self._on_exit(handle, True, f'could not start its process: {exc}')
                    return False
                _log.warning('the fork server is gone (%s): starting a new one', exc)
                fork_server.relaunch(self._settings.ros)
        handle.process = process
        self._main_inbox.watch(process.sentinel,
                               lambda _fd, h=handle, p=process: self._on_sentinel(h, p))
        return True

    # -- stopping --------------------------------------------------------------------
    def stop(self, names: list[str], timeout: float) -> None:
        """Stop heads in parallel: poison pill, then terminate, then kill after timeout.

        Raises UnknownHead for a name that is no sub-head.
        """
        targets = self._live(list(map(self._handle, names)))
        self._request_stop(targets)
        self._wait(targets, timeout)
        self._escalate(targets, timeout)

    def stop_soon(self, name: str, timeout: float, done: Callable[[], None]) -> None:
        """Stop a head without waiting for it: done() once it ended (escalating after timeout).

        Raises UnknownHead for a name that is no sub-head.
        """
        handle = self._handle(name)
        if not self._live([handle]):
            done()
            return
        handle.when_stopped.append(done)
        self._request_stop([handle])
        generation = handle.generation
        self._main_inbox.call_later(timeout, lambda: self._stop_late(handle, generation, timeout))

    def _stop_late(self, handle: _Handle, generation: int, timeout: float) -> None:
        """Terminate a head that stop_soon() asked to stop in vain; kill it 2 s later."""
        if handle.generation != generation or handle.state != 'stopping':
            return
        if handle.spec.mode == THREAD:
            self._escalate([handle], timeout)  # (abandons it: nothing to wait for)
            return
        _log.error('head %r did not stop within %g s: terminating it', handle.spec.name, timeout)
        handle.process.terminate()

        def kill() -> None:
            if handle.generation == generation and handle.state == 'stopping':
                _log.error('head %r ignored SIGTERM: killing it', handle.spec.name)
                handle.process.kill()  # (its sentinel closes it out)
        self._main_inbox.call_later(2.0, kill)

    def shutdown(self, bound: list[str], unbound: list[str], timeout: float,
                 serve: Callable[[], Any] | None = None) -> None:
        """Stop the application's heads: bound ones now, unbound ones when they end or time out.

        serve() is called whenever mail arrives meanwhile, so the main head keeps answering
        the heads that still run.
        """
        self.stopping = True
        bound_handles = self._live(list(map(self._handle, bound)))
        unbound_handles = self._live(list(map(self._handle, unbound)))
        self._request_stop(bound_handles)
        self._wait(bound_handles + unbound_handles, timeout, serve)
        self._escalate(bound_handles, timeout)
        self.stop([h.spec.name for h in unbound_handles], 2.0)

    @staticmethod
    def _live(handles: list[_Handle]) -> list[_Handle]:
        """Return the heads that run; a pending restart is cancelled instead."""
        live = []
        for handle in handles:
            if handle.state == 'restarting':
                handle.state, handle.restart_at = 'stopped', None
            elif handle.state in ('running', 'stopping'):
                live.append(handle)
        return live

    def _request_stop(self, handles: list[_Handle]) -> None:
        for handle in handles:
            handle.stop_requested = True
            handle.state = 'stopping'
            self._tell(handle, self._settings.poison_pill)

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
                _log.error('thread head %r did not stop within %g s; abandoning it (it will '
                           'never start again)', handle.spec.name, timeout)
                # What waits for it will not be handled: every slot it holds counts as lost.
                address = self._directory[handle.spec.name]
                held = address.queue_size - address.slots.get_value()
                self._on_exit(handle, True, 'abandoned: did not stop in time', Loss(vanished=held))
                handle.state = 'abandoned'  # its thread still owns its inbox

    def kill_all(self) -> None:
        """Kill every head process at once (a forced stop)."""
        self.forced = True
        for handle in self.handles.values():
            if handle.process is not None and handle.process.is_alive():
                handle.process.kill()

    def _tell(self, handle: _Handle, subject: str, **body: Any) -> None:
        """Post a control envelope for the head's current run; a failure is logged."""
        name = handle.spec.name
        try:
            self._bus.post(env.make(self._settings.main, name, subject,
                                    {'generation': handle.generation, **body}), control=True)
        except Exception as exc:  # (a head that died meanwhile: its sentinel tells the rest)
            _log.error('could not send %r to %r: %s', subject, name, exc)

    def _wait(self, handles: list[_Handle], timeout: float,
              serve: Callable[[], Any] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while any(h.state in ('running', 'stopping') for h in handles) and not self.forced:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._main_inbox.poll(remaining, ignore_queued=serve is None) and serve:
                serve()

    def close(self) -> None:
        """Release what the supervisor holds (after every head stopped)."""
        for handle in self.handles.values():
            if handle.inbox is not None and handle.state != 'abandoned':  # (its thread's)
                handle.inbox.close()
        self._lifeline_w.close()
        self._lifeline_r.close()

    # -- exits -----------------------------------------------------------------------
    def on_born(self, envelope: dict) -> None:
        """Take a head's word that its birth() is done."""
        handle = self.handles.get(envelope.get('sender'))
        if handle is not None:
            handle.born = (envelope.get('body') or {}).get('generation', 0)
            if handle.born == handle.generation:
                self._call_soon(handle.when_born)
                if handle.goal in ('inactive', 'active'):  # a managed head, ready: drive it
                    self._tell(handle, env.LIFECYCLE, transition='configure')
                if handle.goal == 'active':
                    self._tell(handle, env.LIFECYCLE, transition='activate')

    def on_lifecycle(self, envelope: dict) -> None:
        """Take a managed head's report of the lifecycle state a transition led it to."""
        handle = self.handles.get(envelope.get('sender'))
        body = envelope.get('body') or {}
        if handle is None or body.get('generation') != handle.generation:
            return
        handle.lifecycle = state = body.get('state')
        if body.get('transition') and state in PRIMARY:
            handle.goal = state  # (restarts come back to it)
        elif state == 'finalized':
            handle.stop_requested = True  # it ends because it was shut down, not failed
        _log.info('head %r is %s', handle.spec.name, state)

    def change_state(self, name: str, transition: str) -> None:
        """Ask a running managed head for a lifecycle transition (its state follows)."""
        handle = self._handle(name)
        if handle.spec.lifecycle is None:
            raise StateError(f'head {name!r} is not a managed node (its class sets no lifecycle)')
        if transition not in TRANSITIONS:
            raise StateError(f'no transition {transition!r}; transitions: '
                             f'{", ".join(TRANSITIONS)}')
        if handle.state != 'running':
            raise StateError(f'head {name!r} is {handle.state}')
        self._tell(handle, env.LIFECYCLE, transition=transition)

    def on_report(self, envelope: dict) -> None:
        """Take a head's report of its end (a control envelope)."""
        handle = self.handles.get(envelope.get('sender'))
        body = envelope.get('body') or {}
        if handle is None or body.get('generation') != handle.generation:
            return
        if handle.spec.mode == PROCESS:
            handle.reports[handle.generation] = body  # the sentinel closes it out
            return
        handle.thread.join()
        if handle.state == 'abandoned':
            _log.warning('abandoned thread head %r ended at last', handle.spec.name)
            handle.state = 'stopped'
            return
        error = body.get('error')
        self._on_exit(handle, error is not None, error, Loss(body.get('unhandled') or []),
                      bool(body.get('fatal')))

    def _on_sentinel(self, handle: _Handle, process: Any) -> None:
        self._main_inbox.unwatch(process.sentinel)
        process.join()
        self._main_inbox.poll(0.0)  # take the head's own report, written before it exited
        if handle.process is not process:
            return
        self._directory.set_running(handle.spec.name, False)
        body = handle.reports.pop(handle.generation, None) or {}
        error = body.get('error')
        code = process.exitcode
        if code == -TEARDOWN_SIGNAL:
            _log.warning('head %r: its process did not end within %g s of its death() (a hung DDS '
                         'teardown, see runtime.TEARDOWN_LIMIT): its alarm ended it',
                         handle.spec.name, TEARDOWN_LIMIT)
            code = 0
        failed = code != 0 or error is not None
        if failed and error is None:
            error = (f'killed by signal {signal.Signals(-code).name}' if code < 0
                     else f'exited with code {code}')
        loss = Loss(body.get('unhandled') or [])  # (reported and logged by the head itself)
        address = self._directory[handle.spec.name]
        if not body or not nothing_held(address):  # it could not give everything back itself
            taken = reclaim(address, self._listeners[handle.spec.name],
                            self._settings.poison_pill)
            loss.recovered += taken.recovered
            loss.vanished += taken.vanished
        self._on_exit(handle, failed, error, loss, bool(body.get('fatal')))

    def _on_exit(self, handle: _Handle, failed: bool, error: str | None,
                 loss: Loss | None = None, fatal: bool = False) -> None:
        name = handle.spec.name
        handle.state = 'stopped'
        handle.exits += 1
        handle.last_error = error if failed else None
        self._directory.set_running(name, False)
        self._call_soon(handle.when_stopped)  # (after this exit is fully taken in)
        self._call_soon(handle.when_born)  # (ended before its birth was done)
        if loss is not None:
            handle.lost += loss.count
        if loss is not None and (loss.recovered or loss.vanished):
            details = [repr(subject) for subject in loss.recovered]
            if loss.vanished:
                details.append(f'{loss.vanished} whose subjects died with it')
            _log.error('head %r: %d accepted envelope(s) not handled: %s', name, loss.count,
                       ', '.join(details))
        if handle.stop_requested or self.stopping:
            _log.info('head %r stopped', name)
            return
        if failed:
            _log.error('head %r failed: %s', name, (error or '').rstrip())
        else:
            _log.info('head %r ended', name)
        if fatal:  # a configuration error: starting it again cannot help
            self._give_up(f'head {name!r} cannot run as configured: '
                          f'{(error or "").strip().splitlines()[-1]}', EXIT_CONFIG)
        elif handle.policy.wants(failed):
            self._schedule_restart(handle)

    def _schedule_restart(self, handle: _Handle) -> None:
        spec, policy = handle.spec, handle.policy
        now = time.monotonic()
        delay = policy.next_delay(now)
        if delay is None:
            self._give_up(f'head {spec.name!r} needed more than {spec.max_restarts} restart(s) '
                          f'within {spec.restart_window:g} s; last error: '
                          f'{(handle.last_error or "none").strip().splitlines()[-1]}', 1)
            return
        handle.state, handle.restart_at = 'restarting', now + delay
        _log.warning('restarting head %r in %.2f s (%d of at most %d within %g s)', spec.name,
                     delay, len(policy.recent), spec.max_restarts, spec.restart_window)
        generation = handle.generation
        self._main_inbox.call_later(delay, lambda: self._restart_due(handle, generation))

    def _restart_due(self, handle: _Handle, generation: int) -> None:
        if (handle.state != 'restarting' or handle.generation != generation or self.stopping
                or self._should_stop()):
            return  # started, stopped or cancelled meanwhile
        self.start(handle.spec.name)

    # -- queries ---------------------------------------------------------------------
    def status(self) -> list[dict]:
        """Return each head's name, mode, state, generation, exits, losses and last error.

        ``lost`` counts the accepted envelopes the head left unhandled or lost, in all its
        runs; ``errors`` those its filters raised on (answered with an error envelope);
        ``restart_in`` is the seconds until a pending restart (state ``restarting``);
        ``lifecycle`` a managed head's last reported lifecycle state (else None).
        """
        now = time.monotonic()
        return [{'name': h.spec.name, 'mode': h.spec.mode, 'state': h.state,
                 'generation': h.generation, 'exits': h.exits, 'lost': h.lost,
                 'errors': self._directory.faults_of(h.spec.name),
                 'restart_in': (max(h.restart_at - now, 0.0) if h.state == 'restarting'
                                else None),
                 'last_error': h.last_error, 'lifecycle': h.lifecycle,
                 'pid': h.process.pid if h.process is not None else os.getpid()}
                for h in self.handles.values()]

    def _handle(self, name: str) -> _Handle:
        handle = self.handles.get(name.lower() if isinstance(name, str) else name)
        if handle is None:
            raise UnknownHead(f'no sub-head named {name!r}; sub-heads: {", ".join(self.handles)}')
        return handle

