"""The main head's head-control services, called with the real `ros2 service call`."""

from __future__ import annotations

import subprocess
import threading

from harness import run_ros_script, until
from heads import Echo


def call(ros2: str, service: str, kind: str, request: str = '{}') -> str:
    """Return what `ros2 service call` prints for one request."""
    out = subprocess.run([ros2, 'service', 'call', service,
                          f'polycephaly_ros/srv/{kind}', request],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.split('response:', 1)[1]


def test_heads_are_listed_stopped_started_and_restarted_with_ros2_service_call(ros2):
    said: dict[str, str] = {}

    def calls() -> None:  # (a thread: the main head must go on serving meanwhile)
        said['list'] = call(ros2, '/main/list_heads', 'ListHeads')
        said['stop'] = call(ros2, '/main/stop_head', 'ControlHead', '{name: echo}')
        said['stopped'] = call(ros2, '/main/list_heads', 'ListHeads')
        said['start'] = call(ros2, '/main/start_head', 'ControlHead', '{name: echo}')
        said['restart'] = call(ros2, '/main/restart_head', 'ControlHead', '{name: echo}')
        said['bad'] = call(ros2, '/main/stop_head', 'ControlHead', '{name: nope}')

    def script(main):
        worker = threading.Thread(target=calls)
        worker.start()
        until(main, lambda: not worker.is_alive(), timeout=120)
        return main.application.status()[0]

    app = run_ros_script(script, [(Echo, {'name': 'echo', 'mode': 'process'})])
    assert "name='echo', mode='process', state='running'" in said['list']
    assert "ok=True, message=\"head 'echo' stopped\"" in said['stop']
    assert "state='stopped'" in said['stopped']
    assert "ok=True, message=\"head 'echo' started\"" in said['start']
    assert "ok=True, message=\"head 'echo' restarted\"" in said['restart']
    assert "ok=False, message=\"no sub-head named 'nope'; sub-heads: echo\"" in said['bad']
    assert app.outcome['state'] == 'running' and app.outcome['generation'] == 3
