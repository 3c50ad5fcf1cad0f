"""The head base class: birth(), life() looped at a frequency, death(), and its mail.

A Process is what a program subclasses. What it runs with (inbox, bus, node, ROS inbox,
route transports) is set up and closed by its :class:`~polycephaly_ros.runtime.HeadRuntime`,
the same way for the main head, thread heads and process heads; ``head.runtime`` is the
interface bridges and routes use.
"""

from __future__ import annotations

import logging
import numbers
import time
from typing import TYPE_CHECKING, Any, Callable

from . import envelope as env
from .errors import ConfigurationError, EnvelopeError, NoReply
from .filters import Callback, Filter, FilterSet, declared_filters
from .throttle import Throttle

if TYPE_CHECKING:
    from .runtime import HeadRuntime


class Process:
    """A head: subclass it and override birth(), life() and death().

    Threading contract: birth(), life(), death(), mailman(), wait_for_reply() and every
    filter callback run in the head's own thread (the calling thread for the main head).
    send(), reply(), die() and ebrake() may be called from any thread, e.g. a ROS callback.
    """

    #: What an exception escaping a filter does: False (the default) logs its traceback, counts
    #: it (``errors`` in status()) and answers the envelope's sender with an ``error``
    #: envelope, and the head goes on; True ends the head (let it crash: its restart policy
    #: applies). ``add_process(let_it_crash=...)`` sets it per head.
    let_it_crash: bool = False
    #: Whether an envelope from an outside route (socket, ROS, ...) that no filter takes is
    #: answered with an ``error`` envelope naming the head and the subject (it is always
    #: counted in ``unmatched`` and logged).
    answer_unmatched: bool = True
    #: Whether the head's rclpy node offers the per-node services (parameter services and
    #: type description): None gives them to the main head only; a sub-head's node then
    #: carries only its inbox topics (and /rosout, /parameter_events), so many heads start
    #: fast. Set it True on a sub-head class whose parameters others set or read.
    node_services: bool | None = None
    #: Make the sub-head a ROS 2 managed node (ros/lifecycle.py): True starts it unconfigured
    #: (configure runs birth(), activate starts life() and its mail, deactivate pauses them,
    #: cleanup and shutdown run death()); "inactive" or "active" has the supervisor drive it
    #: there once it is ready, and after each restart to the last state it reached. Needs ROS.
    lifecycle: bool | str = False

    def __init__(self) -> None:
        self._filters = FilterSet()
        self._stopping = False
        self.unmatched = 0
        self.args: tuple = ()
        self.kwargs: dict = {}
        #: The Application, on the main head only (sub-heads talk to it by envelope).
        self.application: Any = None

    # -- lifecycle, to override ------------------------------------------------------
    def birth(self) -> None:
        """Prepare the head before life() starts looping."""

    def life(self) -> None:
        """Do one round of the head's work; by default, handle the mail."""
        self.mailman()

    def death(self) -> None:
        """Clean up after the last life(); runs exactly once."""

    # -- identity --------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Return the head's name (lower case; it also names its ROS node)."""
        return self._name

    @property
    def node(self) -> Any:
        """Return the head's rclpy node, or None when the application runs without ROS."""
        return self._node

    @property
    def logger(self) -> logging.Logger:
        """Return the head's logger."""
        return self._logger

    @property
    def stopping(self) -> bool:
        """Tell whether the head was asked to stop."""
        return self._stopping

    def frequency(self, i: float | None = None) -> float:
        """Return the rate at which life() runs per second, or set it when i is given."""
        if i is not None:
            self._period = 1.0 / check_frequency(i)
            self._frequency = float(i)
        return self._frequency

    @property
    def runtime(self) -> HeadRuntime:
        """Return what the head runs with: the interface its bridges and routes use."""
        return self._runtime

    # -- mail ------------------------------------------------------------------------
    def send(
        self,
        recipient: str,
        subject: str = '',
        body: Any = None,
        *,
        timeout: float | None = None,
        **headers: Any,
    ) -> dict:
        """Send an envelope and return it; extra keyword arguments become headers.

        Safe from any thread. Raises EnvelopeError (a reserved header or subject, a priority
        that is not a number, more than the application's max_envelope), UnknownRecipient (no head, route or ROS inbox has the name),
        RecipientUnavailable (the head is stopped, or a route cannot reach it), Unreachable
        (over ROS: no subscriber appeared within the send timeout), QueueFull (the queue
        stayed full for timeout, default the application's send_timeout) or NotSerializable.
        """
        envelope = env.make(self._name, recipient, subject, body, headers)
        self._post(envelope, timeout)
        return envelope

    def reply(
        self, message: dict, body: Any = None, subject: str = 'reply', **headers: Any
    ) -> dict:
        """Answer message on its thread and return the reply; its extra headers are echoed.

        Safe from any thread. Raises what send() raises, and EnvelopeError when message has
        no sender, threadid or threadindex to answer. An answer to a message from outside
        never waits for its peer: over ROS it is published once the peer listens, or dropped
        and counted after a second (see ros/outbox.py).
        """
        envelope = env.answer(message, self._name, body, subject, headers)
        # An answer to an outside peer never waits for it (ROS: a sender that does not listen).
        self._post(envelope, None, message.get('route', env.INTERNAL) == env.INTERNAL)
        return envelope

    def _post(self, envelope: dict, timeout: float | None, patient: bool = True) -> None:
        _check_outgoing(envelope)
        self._bus.post(envelope, control=envelope['subject'] == self._poison_pill,
                       timeout=timeout, patient=patient)

    def wait_for_reply(self, message: dict, timeout: float = 10.0) -> dict:
        """Wait for the reply to message from its recipient; raise NoReply after timeout seconds.

        Runs in the head's own thread. Other envelopes arriving meanwhile stay queued for
        mailman(). Raises NoReply (a TimeoutError) naming the recipient, subject and thread
        when nothing came in time, or at once when the head is stopping.
        """
        deadline = time.monotonic() + timeout
        inbox = self._inbox

        def answers(candidate: dict) -> bool:
            return env.is_reply_to(candidate, message)

        while True:
            found = inbox.take(answers)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping:
                why = 'the head is stopping' if self._stopping else f'within {timeout:g} s'
                raise NoReply(
                    f'no reply from {message["recipient"]!r} to {message["subject"]!r} '
                    f'(thread {message["threadid"]}) {why}'
                )
            inbox.poll(remaining, ignore_queued=True)

    def mailman(self, limit: int | None = None, wait: float = 0.0) -> int:
        """Run the filters on every envelope waiting (at most limit); return how many.

        With wait > 0 and nothing waiting, first wait up to that many seconds for mail
        (or any other event of this head, such as a sub-head ending for the main head).
        """
        self._inbox.poll(wait)
        return self._dispatch(limit or self._batch)

    def _dispatch(self, budget: int, *, stopping: bool = False) -> int:
        inbox = self._inbox
        handled = 0
        while handled < budget:
            envelope = inbox.get()
            if envelope is None:
                break
            handled += 1
            try:
                ran = self._filters.dispatch(envelope)
            except Exception as exc:
                if self.let_it_crash and not stopping:
                    raise
                self._filter_failed(envelope, exc)
                continue
            if not ran:
                self._unmatched(envelope)
        return handled

    def _unmatched(self, envelope: dict) -> None:
        """Count and log an envelope no filter took; answer it when it came from outside."""
        self.unmatched += 1
        subject = envelope.get('subject')
        self._throttle.warning(
            'unmatched', 'no filter matched envelope %r from %r (messageid %s); %d unmatched '
            'so far', subject, envelope.get('sender'), envelope.get('messageid'), self.unmatched)
        if (self.answer_unmatched and envelope.get('route', env.INTERNAL) != env.INTERNAL
                and subject != 'error'):
            try:
                self.reply(envelope, {'error': f'head {self._name!r} does not take subject '
                                               f'{subject!r}'}, subject='error')
            except Exception as failed:  # noqa: BLE001 - an error reply must never raise
                self._throttle.warning('error reply', 'could not tell %r that %r is not taken: '
                                       '%s', envelope.get('sender'), subject, failed)

    def _filter_failed(self, envelope: dict, exc: Exception) -> None:
        """Log, count and answer an envelope a filter raised on; never raise itself."""
        subject, sender = envelope.get('subject'), envelope.get('sender')
        count = self._runtime.bus.directory.count_fault(self._name)
        self._throttle.log(logging.ERROR, 'filter', 'a filter failed on envelope %r from %r '
                           '(%d so far); the head goes on', subject, sender, count,
                           exc_info=exc)
        if subject == 'error' or not isinstance(sender, str) or not sender:
            return  # (never answer an error with an error)
        reason = f'{subject!r} failed in head {self._name!r}: {type(exc).__name__}'
        try:
            self.reply(envelope, {'error': reason}, subject='error')
        except Exception as failed:  # noqa: BLE001 - an error reply must never raise
            self._throttle.warning('error reply', 'could not tell %r that %r failed: %s',
                                   sender, subject, failed)

    def add_filter(
        self, callback: Callback | None = None, route: str | None = env.INTERNAL, **criteria: Any
    ) -> Filter | Callable[[Callback], Callback]:
        """Route envelopes matching criteria to callback; without callback, act as a decorator.

        A string criterion is a regular expression matched against the whole header value;
        filters without criteria are catch-alls, run only when no other filter matched.
        """
        if callback is None:
            def decorate(fn: Callback) -> Callback:
                self._filters.add(fn, route, **criteria)
                return fn
            return decorate
        return self._filters.add(callback, route, **criteria)

    def remove_filter(self, f: Filter) -> None:
        """Remove a filter returned by add_filter()."""
        self._filters.remove(f)

    # -- stopping --------------------------------------------------------------------
    def die(self) -> None:
        """Stop this head after the current life(); death() follows."""
        self._stopping = True
        inbox = getattr(self, '_inbox', None)
        if inbox is not None:
            inbox.wake()

    def ebrake(self, reason: str | None = None) -> None:
        """Ask the main head to stop the whole application at once, giving reason."""
        self._logger.critical('emergency brake: %s', reason or 'no reason given')
        self._bus.post(env.make(self._name, self._main, env.EBRAKE, reason), control=True)

    # -- framework side --------------------------------------------------------------
    def _attach(self, runtime: HeadRuntime) -> None:
        """Bind the head to the runtime that runs it and install its declared filters."""
        if not hasattr(self, '_filters'):  # a subclass __init__ that skipped super().__init__()
            Process.__init__(self)
        self._runtime = runtime
        self._name = runtime.name
        self.args = runtime.args
        self.kwargs = runtime.kwargs
        self._logger = logging.getLogger(f'polycephaly_ros.{runtime.name}')
        self._throttle = Throttle(self._logger)
        if runtime.let_it_crash is not None:
            self.let_it_crash = runtime.let_it_crash
        self.frequency(runtime.frequency)
        self._bus = runtime.bus
        self._inbox = runtime.inbox
        self._batch = 1024
        self._poison_pill = runtime.poison_pill
        self._main = runtime.main
        self._node = runtime.node
        self._generation = runtime.generation
        for callback, route, criteria in declared_filters(self):
            self._filters.add(callback, route, **criteria)

    def _on_control(self, envelope: dict) -> None:
        if envelope['subject'] == self._poison_pill:
            body = envelope.get('body')
            if isinstance(body, dict) and body.get('generation', self._generation) != self._generation:
                return  # a pill meant for an earlier run of this head
            self.die()
        else:
            self._logger.warning('ignored control envelope %r from %r',
                                 envelope['subject'], envelope.get('sender'))

    def _loop(self, after_birth: Callable[[], None] | None = None) -> None:
        """Run birth() then life() at the head's frequency, handling mail as soon as it arrives."""
        self.birth()
        if after_birth is not None:
            after_birth()
        while not self._stopping:
            self._life_round()

    def _life_round(self, interrupted: Callable[[], bool] | None = None) -> None:
        """Run life() once, then handle mail as it arrives until the period is over.

        interrupted() (when given) is asked after each wake-up: true ends the round early.
        """
        started = time.monotonic()
        self.life()
        inbox = self._inbox
        while not self._stopping and not (interrupted is not None and interrupted()):
            remaining = started + self._period - time.monotonic()
            if remaining <= 0:
                break
            if inbox.poll(remaining):
                self._dispatch(self._batch)

    def _serve_while_stopping(self) -> int:
        """Handle the mail waiting now; a failing filter is logged, not fatal, at this stage."""
        self._inbox.poll(0.0)
        return self._dispatch(self._batch, stopping=True)


def _check_outgoing(envelope: dict) -> None:
    """Raise EnvelopeError for a reserved subject or a priority that is not a number."""
    if envelope['subject'].startswith(env.CONTROL_PREFIX):
        raise EnvelopeError(f'subjects starting with {env.CONTROL_PREFIX!r} are reserved')
    if 'priority' in envelope:
        priority = envelope['priority']
        if not isinstance(priority, numbers.Real) or isinstance(priority, bool):
            raise EnvelopeError(f'priority must be a number, not {priority!r}')


def check_frequency(i: Any) -> float:
    """Return i as a float, or raise ConfigurationError if it is no positive finite rate."""
    if isinstance(i, bool) or not isinstance(i, numbers.Real) or not i > 0 or i == float('inf'):
        raise ConfigurationError(f'frequency must be a positive number of runs per second, not {i!r}')
    return float(i)
