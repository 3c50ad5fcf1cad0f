"""The head runtime: one head's resources, opened in order and closed in reverse, for every head.

The main head, thread heads and process heads are all run by a :class:`HeadRuntime`. It
opens, in this order, and closes in the reverse order (an ExitStack):

1. the **inbox**: attached to the bus, so heads of this process queue to it directly; at the
   end, the envelopes still queued are counted and logged, then it is closed (a thread
   head's inbox is kept by the supervisor across restarts);
2. the head's **rclpy node**, when the application runs ROS (a process head's node goes with
   its process's rclpy context, after the head reported its end: DDS teardown can hang);
3. the **head** itself (its declared filters) and its **ROS inbox** topics
   (:mod:`polycephaly_ros.ros.bridge`): what still waits there at the end is answered with
   errors;
4. whatever the head, its bridges and routes open while running and hand to :meth:`own`: a
   route's transport and its place in the bus's routing table, topic bridges.

Between 3 and the closing, the head lives: birth() (for a gated head, once the supervisor
sends BEGIN: its turn in the application's start-up), life() at its frequency, then (after an
orderly stop) the mail already queued, then death(). A head stopped before its birth() never
runs death(); the mail queued for it is counted as unhandled.

The runtime is also the head's interface for bridges and routes (``head.runtime``): its
``name``, ``node``, ``inbox`` (the head's event loop, to watch descriptors), ``bus``,
``poison_pill``, ``send_timeout``, :meth:`knows`, :attr:`heads`, :meth:`deliver` and
:meth:`own`. Nothing outside this module and head.py reaches into a head's private state.

Entry points: :func:`run_thread_head` (a sub-head's thread) and :func:`run_process_head` (a
fresh process from the fork server: tied to the supervisor, with its own bus, inbox and
rclpy context); the main head's runtime is made by ``Application.run()``.

Threading contract: a runtime is created, run and closed in its head's thread; knows(),
heads and deliver() may be used from any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from . import envelope as env
from . import logs
from . import spec as specs
from .bus import Bus
from .errors import ConfigurationError, NoReply, StateError
from .inbox import Inbox

if TYPE_CHECKING:
    from .head import Process
    from .ros.host import RclpyHost
    from .spec import HeadSpec

_log = logging.getLogger('polycephaly_ros.runtime')
#: Longest wait, at a head's end, for senders that took one of its slots to finish writing.
LAST_READ_TIMEOUT = 1.0
#: How long a head process may take from the end of its death() to its exit. Fast DDS can
#: deadlock while entities are destroyed (a discovery message removing a remote endpoint while
#: the participant's event thread waits for the same lock: eProsima/Fast-DDS#6502), with the
#: GIL held; then only the kernel can end the process: TEARDOWN_SIGNAL, from a timer.
TEARDOWN_LIMIT = 2.0
TEARDOWN_SIGNAL = signal.SIGALRM


@dataclass
class Settings:
    """What every head process needs to know about its application."""

    poison_pill: str
    main: str
    namespace: str
    ros: bool
    send_timeout: float
    priority: bool
    log_level: int
    log_queue: Any  # process heads put their log records here; the main process handles them
    start_timeout: float
    max_envelope: int = 256 << 20
    private_shared_memory: bool = True
    discovery_server: str | None = None  # the address of the participants' discovery server
    ros_args: list[str] | None = None  # rclpy.init's args in every process (None: sys.argv)
    ros_logging: bool = False  # records go through rclpy (ros/log.py), not to log_queue


class HeadRuntime:
    """Run one head from birth to death, owning its inbox, node, ROS inbox and the rest."""

    def __init__(
        self,
        make: Callable[[], Process],
        *,
        name: str,
        bus: Bus,
        inbox: Inbox,
        settings: Settings,
        frequency: float,
        args: tuple = (),
        kwargs: dict | None = None,
        host: RclpyHost | None = None,
        generation: int = 1,
        keep_inbox: bool = False,
        on_control: Callable[[dict], None] | None = None,
        let_it_crash: bool | None = None,
        node_services: bool = False,
        gated: bool = False,
        own_host: bool = False,
        lifecycle: str | None = None,
    ) -> None:
        self._make = make
        self.name = name
        self.bus = bus
        #: The head's inbox, which is also its event loop: watch(), call_later(), when_room().
        self.inbox = inbox
        self.poison_pill = settings.poison_pill
        self.main = settings.main
        self.frequency = frequency
        self.args = args
        self.kwargs = kwargs if kwargs is not None else {}
        self.generation = generation
        #: The head's let_it_crash, when its add_process() set one (None: its class decides).
        self.let_it_crash = let_it_crash
        #: Whether the head's node offers parameter and type description services.
        self.node_services = node_services
        #: Wait, once ready, for the supervisor's BEGIN before birth() (its turn in start-up).
        self.gated = gated
        self._begun = False
        #: A managed head's goal state (spec.lifecycle), and its lifecycle (ros/lifecycle.py).
        self.lifecycle = lifecycle
        self.managed: Any = None
        self.node: Any = None
        self.head: Process | None = None
        self._host = host
        self._own_host = own_host  # the host is this head's alone: it destroys the node
        self._keep_inbox = keep_inbox
        self._on_control = on_control
        self._owned: contextlib.ExitStack | None = None
        self._close_error: str | None = None
        #: The subjects of the envelopes accepted but not handled, once the head ended.
        self.unhandled: list[Any] = []
        #: The head ended on a ConfigurationError: restarting it cannot help.
        self.fatal = False

    # -- the interface of bridges and routes ---------------------------------------------
    @property
    def send_timeout(self) -> float:
        """Return how long a send waits for room in a full queue (the application's setting)."""
        return self.bus.send_timeout

    @property
    def heads(self) -> list[str]:
        """Return the names of the application's heads, sorted."""
        return self.bus.directory.names

    def knows(self, name: str) -> bool:
        """Tell whether name is a head of this application."""
        return name in self.bus.directory

    def deliver(self, envelope: dict, timeout: float | None = None) -> None:
        """Post an envelope that nothing else references (just decoded, or made for this).

        Raises what Bus.post raises; QueueFull after timeout (default: the send timeout).
        """
        self.bus.post(envelope, timeout=timeout, handover=True)

    def own(self, close: Callable[[], Any], what: str = '') -> None:
        """Call close() when the head ends, after death(), in reverse order of own() calls."""
        if self._owned is None:
            raise StateError('own() is for a running head (from birth() to death())')

        def closing() -> None:
            try:
                close()
            except Exception:  # one failing close must not keep the others from closing
                _log.exception('head %r: closing %s failed', self.name, what or close)
                self._close_error = self._close_error or traceback.format_exc()

        self._owned.callback(closing)

    # -- running -----------------------------------------------------------------------
    def run(self, after_birth: Callable[[], None] | None = None,
            before_death: Callable[[], None] | None = None,
            closing: Callable[[], None] | None = None) -> str | None:
        """Open, live, die and close (see the module doc); return the error text if it failed.

        closing() is called once the head is over, before what it opened is closed.
        """
        error = None
        with contextlib.ExitStack() as owned:
            self._owned = owned
            try:
                self._open()
            except BaseException:
                error = traceback.format_exc()
            else:
                error = self._live(after_birth, before_death)
            if closing is not None:
                closing()
        self._owned = None
        return error or self._close_error

    def _open(self) -> None:
        owned, inbox = self._owned, self.inbox
        self.bus.attach_inbox(self.name, inbox)
        owned.callback(self._close_inbox)
        if self._host is not None:
            self.node = self._host.create_node(self.name, self.node_services,
                                               managed=self.lifecycle is not None)
            if not self._own_host:
                self.own(lambda: self._host.destroy_node(self.node), 'the node')
        head = self.head = self._make()
        head._attach(self)
        inbox.on_control = self._control
        if self.lifecycle is not None:
            from .ros.lifecycle import Managed

            self.managed = Managed(self, self._report_lifecycle)
        if self.node is not None:
            from .ros.bridge import open_ros_inbox
            from .ros.host import bounded

            ros_inbox = open_ros_inbox(self)

            def close_ros_inbox() -> None:
                with bounded():  # (its subscriptions go: a DDS teardown step)
                    ros_inbox.close()

            self.own(close_ros_inbox, 'the ROS inbox')

    def _control(self, envelope: dict) -> None:
        body = envelope.get('body')
        mine = isinstance(body, dict) and body.get('generation') == self.generation
        if envelope['subject'] == env.BEGIN:
            self._begun = self._begun or mine
        elif envelope['subject'] == env.LIFECYCLE and self.managed is not None:
            if mine and body.get('transition') in specs.TRANSITIONS:
                self.managed.ask(body['transition'])
        else:
            (self._on_control or self.head._on_control)(envelope)

    def _await_turn(self) -> bool:
        """Wait for BEGIN (when gated); False if the head was stopped before its turn."""
        while self.gated and not self._begun and not self.head.stopping:
            self.inbox.poll(None, ignore_queued=True)
        return not self.head.stopping

    def _live(self, after_birth: Callable[[], None] | None,
              before_death: Callable[[], None] | None) -> str | None:
        head = self.head
        error = None
        if not self._await_turn():  # stopped before its birth(): no death() either
            self._last_mail(serve=False)
            return None
        try:
            if self.managed is not None:
                self.managed.live(after_birth)
            else:
                head._loop(after_birth)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error = f'SystemExit({exc.code!r})'
        except NoReply:
            if not head.stopping:
                error = traceback.format_exc()
        except BaseException as exc:
            error = traceback.format_exc()
            self.fatal = isinstance(exc, ConfigurationError)
        if before_death is not None:
            try:
                before_death()
            except BaseException:
                error = error or traceback.format_exc()
        born = self.managed is None or self.managed.born  # (a managed head: configured)
        try:
            self._last_mail(serve=head.stopping and born)
        except BaseException:
            error = error or traceback.format_exc()
        if born:
            try:
                head.death()
            except BaseException:
                error = error or traceback.format_exc()
        return error

    def _report_lifecycle(self, transition: str, state: str) -> None:
        """Tell the main head the lifecycle state a transition led to (ros/lifecycle.py)."""
        try:
            self.bus.post(env.make(self.name, self.main, env.LIFECYCLE,
                                   {'generation': self.generation, 'transition': transition,
                                    'state': state}), control=True)
        except Exception as exc:
            _log.warning('head %r could not report its lifecycle state: %s', self.name, exc)

    def _last_mail(self, serve: bool) -> None:
        """Stop taking mail, then take in everything accepted before (the last read).

        The head is marked stopped first: from then on a send to it raises
        RecipientUnavailable (Bus.admit looks again after taking a slot). Then it reads until
        no sender holds one of its slots outside its queue, so every envelope whose send
        returned is in the queue; after an orderly stop (serve) its filters handle them.
        """
        head, inbox = self.head, self.inbox
        address = self.bus.directory[self.name]
        self.bus.directory.set_running(self.name, False)
        deadline = time.monotonic() + LAST_READ_TIMEOUT
        while True:
            inbox.poll(0.0)
            if serve:
                head._serve_while_stopping()
            on_the_way = address.queue_size - address.slots.get_value() - inbox.counted
            if on_the_way <= 0:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _log.warning('head %r: %d envelope(s) still on their way after %g s (a sender '
                             'stalled mid-send); they are not waited for', self.name, on_the_way,
                             LAST_READ_TIMEOUT)
                return
            inbox.poll(min(remaining, 0.01), ignore_queued=True)

    def _close_inbox(self) -> None:
        try:
            if self.head is not None:
                self.unhandled = [e.get('subject') for e in self.inbox.drop()]
                if self.unhandled:
                    _log.warning('head %r: %d envelope(s) left unhandled at its end: %s',
                                 self.name, len(self.unhandled),
                                 ', '.join(map(repr, self.unhandled)))
        finally:
            if not self._keep_inbox:
                self.bus.detach_inbox(self.name)
                self.inbox.close()


# -- entry points of sub-heads ---------------------------------------------------------------
def announce_birth(bus: Bus, settings: Settings, name: str, generation: int) -> Callable[[], None]:
    """Return what tells the main head that a sub-head's birth() is done."""
    return lambda: bus.post(env.make(name, settings.main, env.BORN, {'generation': generation}),
                            control=True)


def report_exit(bus: Bus, settings: Settings, name: str, generation: int,
                error: str | None, unhandled: list | None = None, fatal: bool = False) -> None:
    """Tell the main head that a sub-head ended, how, and what it left unhandled."""
    try:
        bus.post(env.make(name, settings.main, env.EXITED,
                          {'generation': generation, 'error': error,
                           'unhandled': unhandled or [], 'fatal': fatal}), control=True)
    except Exception:
        _log.exception('head %r could not report its end to %r', name, settings.main)


def run_thread_head(spec: HeadSpec, inbox: Inbox, frequency: float, generation: int, bus: Bus,
                    host: RclpyHost | None, settings: Settings, gated: bool = False) -> None:
    """Run one sub-head in this thread (the target of its thread), then report its end."""
    runtime = HeadRuntime(spec.target, name=spec.name, bus=bus, inbox=inbox, settings=settings,
                          frequency=frequency, args=spec.args, kwargs=spec.kwargs, host=host,
                          generation=generation, keep_inbox=True, let_it_crash=spec.let_it_crash,
                          node_services=bool(spec.target.node_services), gated=gated,
                          lifecycle=spec.lifecycle)
    error = runtime.run(after_birth=announce_birth(bus, settings, spec.name, generation))
    report_exit(bus, settings, spec.name, generation, error, runtime.unhandled, runtime.fatal)


def run_process_head(spec: HeadSpec, frequency: float, generation: int, directory: Any,
                     listener: Any, lifeline: Any, settings: Settings,
                     gated: bool = False) -> None:
    """Run one sub-head in a fresh process: its own inbox, bus, rclpy context and node."""
    _tie_to_supervisor(lifeline)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when heads stop
    logs.in_head_process(settings, spec.name)
    bus = Bus(directory, settings.send_timeout, settings.max_envelope)
    inbox = Inbox(listener, directory[spec.name].slots, priority=settings.priority,
                  poison_pill=settings.poison_pill)
    host = None
    unhandled: list = []
    fatal = False
    try:
        from .ros.host import RclpyHost

        host = (RclpyHost(settings.namespace, settings.private_shared_memory,
                          settings.discovery_server, settings.ros_args)
                if settings.ros else None)
        runtime = HeadRuntime(spec.target, name=spec.name, bus=bus, inbox=inbox,
                              settings=settings, frequency=frequency, args=spec.args,
                              kwargs=spec.kwargs, host=host, generation=generation,
                              let_it_crash=spec.let_it_crash,
                              node_services=bool(spec.target.node_services), gated=gated,
                              own_host=True, lifecycle=spec.lifecycle)
        error = runtime.run(after_birth=announce_birth(bus, settings, spec.name, generation),
                            closing=_arm_teardown_alarm)
        unhandled, fatal = runtime.unhandled, runtime.fatal
    except BaseException:
        error = traceback.format_exc()
    report_exit(bus, settings, spec.name, generation, error, unhandled, fatal)
    try:
        if host is not None:
            host.shutdown()
    finally:
        bus.close()
        inbox.close()
    sys.exit(1 if error else 0)


def _arm_teardown_alarm() -> None:
    """Have the kernel end this process if it still runs TEARDOWN_LIMIT seconds from now."""
    signal.signal(TEARDOWN_SIGNAL, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, TEARDOWN_LIMIT)


def _tie_to_supervisor(lifeline: Any) -> None:
    """End this process as soon as the supervising process is gone, however it ended."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(70)

    threading.Thread(target=watch, name='lifeline', daemon=True).start()
