"""Managed heads: lifecycle transitions from the main head and from `ros2 lifecycle`."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from harness import Harness, run_ros_script, until
from heads import Managed, ManagedActive
from polycephaly_ros.envelope import is_reply_to
from polycephaly_ros.errors import ConfigurationError, StateError


def lifecycle_of(main, name: str) -> str | None:
    return next(h for h in main.application.status() if h['name'] == name)['lifecycle']


def events(main) -> list[str]:
    return [m['body'] for m in main.received if m['subject'] == 'managed']


def reply_to(main, sent: dict, timeout: float = 30) -> dict:
    """Return the reply to sent, taken by the main head's catch-all filter or still queued."""
    def found():
        return next((m for m in main.received if is_reply_to(m, sent)), None)

    return until(main, found, timeout=timeout)


def drive(main, name: str, transition: str, state: str) -> None:
    main.application.change_state(name, transition)
    until(main, lambda: lifecycle_of(main, name) == state, timeout=30)


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_the_main_head_drives_a_managed_head_through_its_lifecycle(mode):
    def script(main):
        until(main, lambda: lifecycle_of(main, 'm') == 'unconfigured', timeout=30)
        said = {'queued': main.send('m', 'ping')}  # taken, not handled: no birth() yet
        assert events(main) == []
        drive(main, 'm', 'configure', 'inactive')
        until(main, lambda: events(main) == ['birth'])
        drive(main, 'm', 'activate', 'active')
        said['first'] = reply_to(main, said['queued'])['body']
        drive(main, 'm', 'deactivate', 'inactive')
        paused = main.send('m', 'ping')  # a paused head keeps its mail: no answer now
        with pytest.raises(AssertionError):
            reply_to(main, paused, timeout=1)
        drive(main, 'm', 'activate', 'active')
        said['after'] = reply_to(main, paused)['body']
        main.application.change_state('m', 'cleanup')  # refused from active: nothing changes
        drive(main, 'm', 'deactivate', 'inactive')
        drive(main, 'm', 'cleanup', 'unconfigured')
        until(main, lambda: events(main) == ['birth', 'death'])
        drive(main, 'm', 'configure', 'inactive')  # birth() again
        drive(main, 'm', 'shutdown', 'finalized')
        until(main, lambda: main.application.status()[0]['state'] == 'stopped', timeout=30)
        said['events'] = events(main)
        said['status'] = main.application.status()[0]
        return said

    said = run_ros_script(script, [(Managed, {'name': 'm', 'mode': mode})]).outcome
    assert said['first'] >= 1 and said['after'] > said['first']
    assert said['events'] == ['birth', 'death', 'birth', 'death']
    # Shut down on request: stopped, not failed, not restarted.
    assert said['status']['exits'] == 1 and said['status']['last_error'] is None
    assert said['status']['generation'] == 1


def test_a_restarted_head_is_driven_back_to_the_state_it_had_reached():
    def script(main):
        until(main, lambda: lifecycle_of(main, 'm') == 'active', timeout=30)  # (its class)
        main.send('m', 'crash')
        until(main, lambda: main.application.status()[0]['generation'] == 2, timeout=30)
        until(main, lambda: lifecycle_of(main, 'm') == 'active', timeout=30)
        lives = reply_to(main, main.send('m', 'ping'))['body']
        return lives, main.application.status()[0], events(main)

    lives, status, said = run_ros_script(
        script, [(ManagedActive, {'name': 'm', 'mode': 'process', 'restart': 'always'})]
    ).outcome
    assert lives >= 1 and status['exits'] == 1 and 'crashed on purpose' in status['last_error']
    assert said[:3] == ['birth', 'death', 'birth']  # the new run was configured again


def test_ros2_lifecycle_set_and_get_drive_a_head(ros2):
    # (a name no other test's node has: a node that ended uncleanly stays on the graph
    # for its lease, and the CLI could ask it)
    def lifecycle(*args: str) -> str:
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run([ros2, 'lifecycle', *args], capture_output=True, text=True,
                                 timeout=60)
            # The daemon's graph can miss the node for a moment (it is read from discovery):
            # the command then sends nothing and says so; ask again.
            if not ('Node not found' in out.stderr and time.monotonic() < deadline):
                break
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.strip()

    said: dict[str, str] = {}

    def calls() -> None:  # (a thread: the main head goes on serving meanwhile)
        # Every call goes through one daemon, as on a desktop where it runs already (the
        # first call would otherwise start it and the next ask it before it found the node).
        subprocess.run([ros2, 'daemon', 'start'], capture_output=True, timeout=60)
        said['before'] = lifecycle('get', '/camera')
        said['configure'] = lifecycle('set', '/camera', 'configure')
        said['activate'] = lifecycle('set', '/camera', 'activate')
        said['after'] = lifecycle('get', '/camera')
        listed = subprocess.run([ros2, 'service', 'call', '/camera_app/list_heads',
                                 'polycephaly_ros/srv/ListHeads'], capture_output=True,
                                text=True, timeout=60)
        said['listed'] = listed.stdout

    def script(main):
        until(main, lambda: lifecycle_of(main, 'camera') == 'unconfigured', timeout=30)
        def calling() -> None:
            try:
                calls()
            except BaseException as exc:  # (re-raised below, in the test's thread)
                said['failed'] = exc

        worker = threading.Thread(target=calling)
        worker.start()
        until(main, lambda: not worker.is_alive(), timeout=120)
        if 'failed' in said:
            raise said['failed']
        until(main, lambda: lifecycle_of(main, 'camera') == 'active', timeout=30)
        return reply_to(main, main.send('camera', 'ping'))['body'], events(main)

    heads = [(Managed, {'name': 'camera', 'mode': 'process'})]
    lives, said_by_head = run_ros_script(script, heads, name='camera_app').outcome
    assert said['before'].startswith('unconfigured')
    assert 'Transitioning successful' in said['configure']
    assert 'Transitioning successful' in said['activate']
    assert said['after'].startswith('active') and lives >= 1 and said_by_head == ['birth']
    assert "lifecycle='active'" in said['listed']  # the main head's ~/list_heads knows


def test_transitions_are_checked_and_a_managed_head_needs_ros():
    def script(main):
        with pytest.raises(StateError, match='no transition'):
            main.application.change_state('m', 'explode')
        with pytest.raises(StateError, match='not a managed node'):
            main.application.change_state('plain', 'configure')

    from heads import Echo

    run_ros_script(script, [(Managed, {'name': 'm'}), (Echo, {'name': 'plain'})])
    with pytest.raises(ConfigurationError, match='need ROS'):
        Harness(lambda main: None, [(Managed, {'name': 'm'})], ros=False).run()
