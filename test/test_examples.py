"""The examples as a user runs them, and how applications answer signals."""

import re
import subprocess
import signal

import psutil
import pytest

from program import ROOT, Program

HELLO = str(ROOT / 'examples' / 'hello_world' / 'launch.py')
SEED = str(ROOT / 'examples' / 'seed_hello_world' / 'launch.py')
SLOW = str(ROOT / 'test' / 'support' / 'slow_app.py')


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_hello_world_shows_the_envelopes_of_a_conversation(mode, tmp_path, leftover_processes):
    # As the README runs it (python -P), from another directory.
    program = Program('-P', HELLO, '--mode', mode, '--count', '2', '--frequency', '10',
                      cwd=tmp_path)
    try:
        assert program.finish(timeout=60) == 0
    finally:
        program.kill()
    out = program.output
    assert out.count("'hello' sent a message to 'main'") == 2
    assert out.count("'main' received a salutation message from 'hello'") == 2
    assert out.count("'hello' received a reply from 'main'") == 2
    for header in ("'messageid':", "'threadid':", "'threadindex': 1", "'threadindex': 2",
                   "'args': ('Arg1', 'Arg2')", "'kwargs': {'abc': 123", "'acme': 123",
                   "'subject': 'reply'", "'time':"):
        assert header in out
    assert f"started head 'hello' ({mode}" in out
    leftover_processes()


def test_seed_example_runs_with_only_its_imports_changed(tmp_path, leftover_processes):
    program = Program('-P', SEED, cwd=tmp_path)
    try:
        program.wait_for(r"'hello' received a reply from 'main'", timeout=30)
        program.proc.send_signal(signal.SIGINT)
        # hello is not bound to main (boundShutdown=False): it keeps going up to threadsTimeout (30 s)
        assert program.finish(timeout=60) == 0
    finally:
        program.kill()
    assert "Start : 'Hello, World!'." in program.output
    assert "Stop : 'Hello, World!'." in program.output
    assert "application stopped: received SIGINT" in program.output
    leftover_processes()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_the_application_in_order(signum, leftover_processes):
    program = Program(HELLO, '--mode', 'process', '--frequency', '10')
    try:
        program.wait_for(r"'hello' received a reply from 'main'")
        program.proc.send_signal(signum)
        assert program.finish(timeout=30) == 0
    finally:
        program.kill()
    assert f'application stopped: received {signum.name}' in program.output
    assert "head 'hello' stopped" in program.output
    leftover_processes()


def test_sigkill_of_the_application_leaves_no_head_behind(leftover_processes):
    program = Program(HELLO, '--mode', 'process', '--frequency', '10')
    try:
        program.wait_for(r"'hello' received a reply from 'main'")
        heads = psutil.Process(program.proc.pid).children(recursive=True)
        assert heads, 'the application should have head processes'
        program.proc.kill()
        program.proc.wait()
        gone, alive = psutil.wait_procs(heads, timeout=10)
        assert not alive
    finally:
        program.kill()
    leftover_processes()


@pytest.mark.parametrize('force_stop', [True, False])
def test_repeated_shutdown_requests_follow_force_stop(force_stop, tmp_path, leftover_processes):
    program = Program(SLOW, str(force_stop), '6')
    try:
        program.wait_for('ready')
        program.proc.send_signal(signal.SIGINT)
        program.wait_for(r'slow dying')
        program.proc.send_signal(signal.SIGINT)
        if force_stop:
            program.wait_for('killing every head now')
            assert program.finish(timeout=5) == 0
        else:
            program.wait_for(r'already stopping \(force_stop is off')
            with pytest.raises(subprocess.TimeoutExpired):  # orderly still: it waits for the head
                program.finish(timeout=2)
            assert program.finish(timeout=30) == 0
            assert re.search(r"head 'slow' did not stop within 6 s: terminating it", program.output)
    finally:
        program.kill()
    leftover_processes()
