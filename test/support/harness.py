"""Run an application whose main head runs a test script, then stops."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from polycephaly_ros import Application, Process


class Scripted(Process):
    """A main head that runs the application's script once, then stops the application."""

    def birth(self) -> None:
        self.received: list[dict] = []
        self.add_filter(self.received.append)  # catch-all: keep what the script did not wait for

    def life(self) -> None:
        app = self.application
        try:
            app.outcome = app.script(self)
        except BaseException as exc:  # re-raised by run_script in the test's frame
            app.failure = exc
        finally:
            self.die()


class Harness(Application):
    """An application of the given sub-heads whose main head runs script(main_head).

    It runs without ROS unless given ``ros=True``: the tests of the core test no ROS.
    """

    def __init__(self, script: Callable[[Process], Any], heads: list = (),
                 main_args: tuple = (), **options: Any) -> None:
        options.setdefault('threads_timeout', 10)
        options.setdefault('ros', False)
        super().__init__(Scripted, *main_args, **options)
        self.script, self.heads = script, heads
        self.outcome: Any = None
        self.failure: BaseException | None = None

    def build(self) -> None:
        for ref, kwargs in self.heads:
            self.add_process(ref, **kwargs)


def run_script(script: Callable[[Process], Any], heads: list = (), **options: Any) -> Harness:
    """Run the application to its end; re-raise what the script raised; return the application."""
    app = Harness(script, heads, **options)
    app.run()
    if app.failure is not None:
        raise app.failure
    return app


def run_ros_script(script: Callable[[Process], Any], heads: list = (), **options: Any) -> Harness:
    """Run the application with ROS (every head a node); see run_script()."""
    return run_script(script, heads, ros=True, **options)


def until(head: Process, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Handle head's mail and events until condition() is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f'condition not met within {timeout} s'
        head.mailman(wait=min(remaining, 0.2))
    return value


def ask(head: Process, to: str, subject: str, body: Any = None, timeout: float = 10.0) -> Any:
    """Send to a head and return the body of its reply."""
    return head.wait_for_reply(head.send(to, subject, body), timeout)['body']


class Running:
    """An application of heads whose main head idles in a thread until close().

    For tests that talk to it from outside meanwhile (the fuzz suites); ``main`` is its main
    head once it runs.
    """

    def __init__(self, heads: list, **options: Any) -> None:
        self.stop, self.ready = threading.Event(), threading.Event()
        self.main: Process | None = None
        self.app = Harness(self._script, heads, **options)
        self.app.handle_signals = False
        self.thread = threading.Thread(target=self.app.run, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), 'the application did not start'

    def _script(self, main: Process) -> list[dict]:
        self.main = main
        self.ready.set()
        until(main, self.stop.is_set, timeout=3600)
        return main.application.status()

    def close(self) -> list[dict]:
        """Stop the application; return the heads' status just before it stopped."""
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.app.failure is not None:
            raise self.app.failure
        return self.app.outcome
