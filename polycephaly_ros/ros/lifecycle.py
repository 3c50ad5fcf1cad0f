"""A head as a ROS 2 managed node: lifecycle transitions run birth(), life, pause and death().

A head class with ``lifecycle = True`` gets an rclpy ``LifecycleNode``; ``lifecycle =
'inactive'`` or ``'active'`` also has the supervisor drive it to that state once it is ready.
The head comes up *unconfigured*: its inbox takes mail (queued, not handled) and it counts as
started, so the heads after it start. Then:

- ``configure`` runs birth() (-> inactive); ``activate`` starts life() at the head's frequency
  and the handling of mail (-> active); ``deactivate`` pauses both (-> inactive): mail stays
  queued and senders are not refused, up to the queue's size;
- ``cleanup`` runs death() (-> unconfigured; a later configure runs birth() again);
  ``shutdown`` runs death() when born, then the head ends as stopped (-> finalized, no restart);
- birth(), life() or death() raising: the transition answers ERROR and the head fails (its
  restart policy applies); the new generation is driven back to the last primary state the head
  reached (``handle.goal`` in the supervisor), so restarts keep the lifecycle state.

Transitions come from the node's services (``ros2 lifecycle set``: rclpy calls them in the
process's executor thread, which then waits for the head's own thread to run the step) or from
control envelopes (``Application.change_state()``, the supervisor after a restart), which the
head's thread runs with ``node.trigger_*()``. Every step runs in the head's thread, so birth()
and friends keep their threading contract; a step must not wait for callbacks of its own
process's executor. Each completed transition is reported to the main head (``status()``'s
``lifecycle``, ``~/list_heads``).
"""

from __future__ import annotations

import collections
import logging
import threading
import traceback
from typing import Any, Callable

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from ..spec import TRANSITIONS

_log = logging.getLogger('polycephaly_ros.lifecycle')


class ManagedNode(LifecycleNode):
    """A LifecycleNode whose transition callbacks are a Managed head's steps."""

    steps: Managed | None = None

    def _step(self, name: str) -> TransitionCallbackReturn:
        if self.steps is None:
            return TransitionCallbackReturn.FAILURE
        return self.steps.step(name)

    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        return self._step('configure')

    def on_activate(self, state: Any) -> TransitionCallbackReturn:
        return self._step('activate')

    def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
        return self._step('deactivate')

    def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
        return self._step('cleanup')

    def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
        return self._step('shutdown')

    def on_error(self, state: Any) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.FAILURE  # -> finalized: the head has failed


class _Request:
    """A step asked for from another thread, and its answer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = threading.Event()
        self.result = TransitionCallbackReturn.FAILURE


class Managed:
    """Run one head's life as its lifecycle node's transitions say (in the head's thread)."""

    def __init__(self, runtime: Any, report: Callable[[str, str], None]) -> None:
        self.runtime = runtime
        self.head = runtime.head
        self.node: ManagedNode = runtime.node
        self._report = report  # report(transition, state) to the main head
        self._thread = threading.get_ident()
        self.born = False
        self.active = False
        self.error: str | None = None  # what a failed step raised (the head has failed)
        self._asked: collections.deque[_Request] = collections.deque()  # from other threads
        self._controls: collections.deque[str] = collections.deque()  # control envelopes
        self.node.steps = self

    # -- any thread ------------------------------------------------------------------------
    def step(self, name: str) -> TransitionCallbackReturn:
        """Run a transition's step in the head's thread; return how it went."""
        if threading.get_ident() == self._thread:
            return self._run(name)
        request = _Request(name)
        self._asked.append(request)
        self.runtime.inbox.wake()
        while not request.done.wait(0.5):
            if self.head.stopping or self.error is not None:  # it will not come to it
                return TransitionCallbackReturn.FAILURE
        return request.result

    # -- the head's thread ---------------------------------------------------------------
    def ask(self, transition: str) -> None:
        """Queue a transition a control envelope asked for (run by live())."""
        self._controls.append(transition)

    def live(self, after_birth: Callable[[], None] | None) -> None:
        """Serve transitions; while active, run life() and handle mail, as Process._loop."""
        head, inbox = self.head, self.runtime.inbox
        if after_birth is not None:
            after_birth()  # (ready: in its place in the start order, the next head may start)
        self._report('', 'unconfigured')
        while not head.stopping:
            self._serve()
            if self.active:
                head._life_round(lambda: not self.active or self._pending())
            elif not self._pending():
                inbox.poll(None, ignore_queued=True)
        if self.error is not None:
            raise _StepFailed(self.error)

    def _pending(self) -> bool:
        return bool(self._asked or self._controls) or self.error is not None

    def _serve(self) -> None:
        while self._asked:
            request = self._asked.popleft()
            request.result = self._run(request.name)
            request.done.set()
        while self._controls and self.error is None:
            name = self._controls.popleft()
            trigger = getattr(self.node, f'trigger_{name}')
            try:
                result = trigger()  # (runs the step here, through _run)
            except Exception as exc:  # (rclpy: no such transition from this state)
                _log.warning('head %r: %s refused: %s', self.head.name, name, exc)
                continue
            if result != TransitionCallbackReturn.SUCCESS:
                _log.warning('head %r: %s did not succeed', self.head.name, name)
        if self.error is not None:
            self.head.die()

    def _run(self, name: str) -> TransitionCallbackReturn:
        head = self.head
        try:
            if name == 'configure':
                head.birth()
                self.born = True
            elif name == 'activate':
                self.active = True
            elif name == 'deactivate':
                self.active = False
            elif name in ('cleanup', 'shutdown'):
                self.active = False
                if self.born:
                    self.born = False
                    head.death()
                if name == 'shutdown':
                    head.die()
        except Exception:
            self.error = traceback.format_exc()
            _log.error('head %r: %s failed:\n%s', head.name, name, self.error)
            return TransitionCallbackReturn.ERROR
        self._report(name, TRANSITIONS[name])  # (the state the transition now completes)
        return TransitionCallbackReturn.SUCCESS


class _StepFailed(Exception):
    """A lifecycle step of the head raised (its traceback is the message)."""
