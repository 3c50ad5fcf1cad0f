"""The main head's ROS services to list, start, stop and restart the application's heads.

On the main head's node (so ``<namespace>/<main>/...``)::

    ~/list_heads    polycephaly_ros/srv/ListHeads     every sub-head: name, mode, state, pid, ...
    ~/start_head    polycephaly_ros/srv/ControlHead   start a stopped head, once it is born
    ~/stop_head     polycephaly_ros/srv/ControlHead   stop a head, once it ended
    ~/restart_head  polycephaly_ros/srv/ControlHead   stop it if it runs, start it again

so ``ros2 service call /robot/service/stop_head polycephaly_ros/srv/ControlHead "{name:
diagnostics}"`` works without our library. A bad name is answered ``ok: false`` with the heads
there are.

Threading contract: the callbacks are coroutines run by the host's executor thread; each asks
the main head's loop to act (the supervisor lives there, Inbox.call_soon_threadsafe) and awaits
an rclpy Future that the loop completes, so the executor goes on meanwhile and the main head
never blocks on ROS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..errors import PolycephalyError

if TYPE_CHECKING:
    from ..application import Application
    from ..runtime import HeadRuntime


class HeadControl:
    """Serve the four services on the main head's node until close()."""

    def __init__(self, application: Application, runtime: HeadRuntime, executor: Any) -> None:
        from polycephaly_ros.srv import ControlHead, ListHeads

        self._app, self._inbox, self._executor = application, runtime.inbox, executor
        node = self._node = runtime.node
        self._services = [
            node.create_service(ListHeads, '~/list_heads', self._list),
            node.create_service(ControlHead, '~/start_head', self._action('start', 'started')),
            node.create_service(ControlHead, '~/stop_head', self._action('stop', 'stopped')),
            node.create_service(ControlHead, '~/restart_head',
                                self._action('restart', 'restarted')),
        ]

    def close(self) -> None:
        """Stop serving."""
        for service in self._services:
            self._node.destroy_service(service)
        self._services = []

    def _on_main(self, act: Callable[[Callable[[Any], None]], None]) -> Any:
        """Return a Future of what act(done) hands to done, acting in the main head's loop."""
        from rclpy.task import Future

        future = Future(executor=self._executor)
        # A done callback makes set_result() wake the executor (it runs it as a task), and so
        # the coroutine awaiting the future; a bare await would wait for the next wake-up.
        future.add_done_callback(lambda _future: None)

        def in_main_loop() -> None:
            try:
                act(future.set_result)
            except PolycephalyError as exc:
                future.set_result(exc)
        self._inbox.call_soon_threadsafe(in_main_loop)
        return future

    async def _list(self, _request: Any, response: Any) -> Any:
        from polycephaly_ros.msg import HeadStatus

        heads = await self._on_main(lambda done: done(self._app.status()))
        response.heads = [HeadStatus(name=h['name'], mode=h['mode'], state=h['state'],
                                     pid=h['pid'], generation=h['generation'],
                                     exits=h['exits'], lost=h['lost'],
                                     last_error=h['last_error'] or '',
                                     lifecycle=h['lifecycle'] or '') for h in heads]
        return response

    def _action(self, verb: str, past: str) -> Callable[[Any, Any], Any]:
        async def serve(request: Any, response: Any) -> Any:
            name = request.name
            error = await self._on_main(lambda done: getattr(self._app, verb)(name, done))
            response.ok = error is None
            response.message = f'head {name!r} {past}' if error is None else str(error)
            return response
        return serve
