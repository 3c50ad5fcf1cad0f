"""Signals to the application's process: SIGINT during start-up, SIGKILL of the main process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from program import Program

APP = str(Path(__file__).resolve().parents[1] / 'support' / 'many_heads_app.py')


@pytest.mark.timeout(120)
@pytest.mark.parametrize('when', [0.1, 0.5, 1.0, 'h00', 'h09'])
def test_sigint_during_the_start_up_of_30_process_heads_stops_it_promptly(when,
                                                                          leftover_processes):
    program = Program(APP, '30', 'on')
    try:
        program.wait_for(r'^pid \d+')
        if isinstance(when, str):  # once that head was born
            program.wait_for(rf'^born {when}$', timeout=60)
        else:  # while the heads get ready: the moment is what the case varies, not a wait
            time.sleep(when)
        signalled = time.monotonic()
        program.proc.send_signal(signal.SIGINT)
        code = program.finish(timeout=60)
        took = time.monotonic() - signalled
    finally:
        program.kill()
    born = sum(line.startswith('born ') for line in program.lines)
    print(f'\nSIGINT at {when}: {born} of 30 heads born, exited after {took:.2f} s')
    assert code == 0 and 'exit 0\n' in program.lines, program.output
    assert "received SIGINT" in program.output
    # The rest are never born (those still getting ready end without birth() or death()); those
    # born stop in parallel. Without the fix the whole start-up ran first: 30 heads, 15 s and more
    # (born < 30 tells the two apart; a loaded CI run once took 10.2 s with none born).
    assert born < 30 and took < 15, program.output
    leftover_processes()


@pytest.mark.timeout(120)
def test_a_sigkilled_application_leaves_no_process_and_its_leftovers_go_at_the_next_start(
        leftover_processes):
    program = Program(APP, '3', 'on')
    try:
        pid = int(program.wait_for(r'^pid \d+').split()[1])
        program.wait_for('^ready', timeout=60)
        family = psutil.Process(pid).children(recursive=True)
        assert len(family) >= 4  # the fork server and three heads
        rundirs = list(Path(os.environ['TMPDIR']).glob(f'polycephaly-{pid}-*'))
        assert len(rundirs) == 1
        program.proc.kill()
        program.proc.wait()
    finally:
        program.kill()
    leftover_processes(timeout=10)  # every head and the fork server ended by themselves
    assert rundirs[0].exists()  # a SIGKILLed application cannot clean up ...
    zombies = _unlocked_fastdds_segments()
    following = Program(APP, '1', 'on')
    try:
        following.wait_for('^ready', timeout=60)
        following.proc.send_signal(signal.SIGINT)
        assert following.finish(timeout=60) == 0, following.output
    finally:
        following.kill()
    assert not rundirs[0].exists()  # ... the next one to start does
    assert not zombies & _unlocked_fastdds_segments()
    leftover_processes()


def _unlocked_fastdds_segments() -> set[str]:
    """Return the Fast DDS segment files in /dev/shm that no live process holds."""
    from polycephaly_ros.ros import shared_memory

    found = set()
    for path in Path('/dev/shm').glob('fastdds_*_[es]l'):
        if not shared_memory._locked(path):
            found.add(path.name)
    return found
