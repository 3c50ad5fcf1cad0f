"""The head base class: birth(), life() looped at a frequency, death(), and its mail."""

from __future__ import annotations

import logging
import numbers
import time
import traceback
from typing import Any, Callable

from . import envelope as env
from .bus import Bus, Inbox
from .errors import ConfigurationError, EnvelopeError, NoReply
from .filters import Callback, Filter, FilterSet, declared_filters

EXITED = env.CONTROL_PREFIX + 'exited'
BORN = env.CONTROL_PREFIX + 'born'
EBRAKE = env.CONTROL_PREFIX + 'ebrake'


class Process:
    """A head: subclass it and override birth(), life() and death().

    Threading contract: birth(), life(), death(), mailman(), wait_for_reply() and every
    filter callback run in the head's own thread (the calling thread for the main head).
    send(), reply(), die() and ebrake() may be called from any thread, e.g. a ROS callback.
    """

    _ros_inbox: Any = None  # the head's inbox topics, taken from in its thread (ros_bridge)

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
            self._period = 1.0 / _check_frequency(i)
            self._frequency = float(i)
        return self._frequency

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
        """Send an envelope and return it; extra keyword arguments become headers."""
        envelope = env.make(self._name, recipient, subject, body, headers)
        self._post(envelope, timeout)
        return envelope

    def reply(
        self, message: dict, body: Any = None, subject: str = 'reply', **headers: Any
    ) -> dict:
        """Answer message on its thread and return the reply; its extra headers are echoed."""
        envelope = env.answer(message, self._name, body, subject, headers)
        self._post(envelope, None)
        return envelope

    def _post(self, envelope: dict, timeout: float | None) -> None:
        _check_outgoing(envelope)
        self._bus.post(envelope, control=envelope['subject'] == self._poison_pill,
                       timeout=timeout)

    def wait_for_reply(self, message: dict, timeout: float = 10.0) -> dict:
        """Wait for the reply to message from its recipient; raise NoReply after timeout seconds.

        Other envelopes arriving meanwhile stay queued for mailman().
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
            if stopping:
                try:
                    ran = self._filters.dispatch(envelope)
                except Exception:
                    self._logger.exception('while stopping, a filter failed on envelope %r from %r',
                                           envelope.get('subject'), envelope.get('sender'))
                    continue
            else:
                ran = self._filters.dispatch(envelope)
            if not ran:
                self.unmatched += 1
                self._logger.warning(
                    'no filter matched envelope %r from %r (messageid %s); %d unmatched so far',
                    envelope.get('subject'), envelope.get('sender'), envelope.get('messageid'),
                    self.unmatched,
                )
        return handled

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
        self._bus.post(env.make(self._name, self._main, EBRAKE, reason), control=True)

    # -- seed (camelCase) names --------------------------------------------------------
    addFilter = add_filter
    removeFilter = remove_filter
    waitForReply = wait_for_reply

    # -- framework side --------------------------------------------------------------
    def _attach(
        self,
        *,
        name: str,
        args: tuple,
        kwargs: dict,
        frequency: float,
        bus: Bus,
        inbox: Inbox,
        poison_pill: str,
        main: str,
        node: Any = None,
        generation: int = 1,
    ) -> None:
        if not hasattr(self, '_filters'):  # a subclass __init__ that skipped super().__init__()
            Process.__init__(self)
        self._name = name
        self.args = args
        self.kwargs = kwargs
        self._logger = logging.getLogger(f'polycephaly_ros.{name}')
        self.frequency(frequency)
        self._bus = bus
        self._inbox = inbox
        bus.local[name] = inbox
        self._batch = 1024
        self._poison_pill = poison_pill
        self._main = main
        self._node = node
        self._generation = generation
        inbox.on_control = self._on_control
        for callback, route, criteria in declared_filters(self):
            self._filters.add(callback, route, **criteria)
        if node is not None:
            from .ros_bridge import open_ros_inbox

            self._ros_inbox = open_ros_inbox(self)

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
        inbox = self._inbox
        while not self._stopping:
            started = time.monotonic()
            self.life()
            while not self._stopping:
                remaining = started + self._period - time.monotonic()
                if remaining <= 0:
                    break
                if inbox.poll(remaining):
                    self._dispatch(self._batch)

    def _serve_while_stopping(self) -> int:
        """Handle the mail waiting now; a failing filter is logged, not fatal, at this stage."""
        self._inbox.poll(0.0)
        return self._dispatch(self._batch, stopping=True)

    def _finish(self) -> int:
        """Handle mail already queued (after an orderly stop), run death(); return unhandled count."""
        try:
            if self._stopping:
                self._serve_while_stopping()
        finally:
            try:
                self.death()
            finally:
                if self._ros_inbox is not None:  # what arrives from now on gets an error
                    self._ros_inbox.close()
        self._inbox.poll(0.0)
        left = len(self._inbox)
        if left:
            self._logger.warning('%d envelope(s) left unhandled at death: %s', left,
                                 ', '.join(repr(e.get('subject')) for e in self._inbox.queued()))
        return left


def _check_outgoing(envelope: dict) -> None:
    """Raise EnvelopeError for a reserved subject or a priority that is not a number."""
    if envelope['subject'].startswith(env.CONTROL_PREFIX):
        raise EnvelopeError(f'subjects starting with {env.CONTROL_PREFIX!r} are reserved')
    if 'priority' in envelope:
        priority = envelope['priority']
        if not isinstance(priority, numbers.Real) or isinstance(priority, bool):
            raise EnvelopeError(f'priority must be a number, not {priority!r}')


def _check_frequency(i: Any) -> float:
    if isinstance(i, bool) or not isinstance(i, numbers.Real) or not i > 0 or i == float('inf'):
        raise ConfigurationError(f'frequency must be a positive number of runs per second, not {i!r}')
    return float(i)


def run_head(
    head: Process,
    after_birth: Callable[[], None] | None = None,
    before_death: Callable[[], None] | None = None,
) -> str | None:
    """Run a head from birth to death; return the error text if it failed, else None."""
    error = None
    try:
        head._loop(after_birth)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = f'SystemExit({exc.code!r})'
    except NoReply:
        if not head._stopping:
            error = traceback.format_exc()
    except BaseException:
        error = traceback.format_exc()
    if before_death is not None:
        try:
            before_death()
        except BaseException:
            error = error or traceback.format_exc()
    try:
        head._finish()
    except BaseException:
        error = error or traceback.format_exc()
    return error
