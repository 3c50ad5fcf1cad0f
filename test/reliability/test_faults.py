"""Faults under load: a head process killed or stopped, the fork server killed.

The figures each run measures (detection and restart times after kill -9) are printed; the
README quotes one run (``./dev test test/reliability -s``).
"""

from __future__ import annotations

import os
import signal
import statistics
import time

import pytest

from accounting import Pump, Sink, Tally
from harness import ask, run_script, until
from heads import Echo

KILLS = 10


def state(main, name: str) -> dict:
    return next(h for h in main.application.status() if h['name'] == name)


@pytest.mark.timeout(120)
def test_kill_9_of_a_process_head_under_load(tmp_path, leftover_processes):
    tally = Tally(tmp_path / 'tally')
    detected: list[float] = []
    restarted: list[float] = []

    def script(main):
        slots = main.runtime.bus.directory['victim'].slots
        for k in range(KILLS):
            before = state(main, 'victim')
            handled = tally.value('victim.handled')
            until(main, lambda: tally.value('victim.handled') > handled + 50, timeout=20)
            killed = time.monotonic()
            os.kill(before['pid'], signal.SIGKILL)
            until(main, lambda: state(main, 'victim')['exits'] > before['exits'], timeout=10)
            detected.append(time.monotonic() - killed)
            until(main, lambda: state(main, 'victim')['state'] == 'running'
                  and state(main, 'victim')['generation'] > before['generation'], timeout=10)
            restarted.append(time.monotonic() - killed)
        main.application.stop('pump')
        # The bound is exact: once the victim caught up, every one of its slots is free again.
        until(main, lambda: slots.get_value() == 20, timeout=20)
        return state(main, 'victim')

    heads = [(Sink, {'name': 'victim', 'mode': 'process', 'tally': str(tmp_path / 'tally'),
                     'restart': 'always', 'max_restarts': KILLS + 1, 'restart_window': 60,
                     'restart_backoff': (0.05, 0.05)}),
             (Sink, {'name': 'steady', 'mode': 'process', 'tally': str(tmp_path / 'tally')}),
             (Pump, {'name': 'pump', 'mode': 'process', 'tally': str(tmp_path / 'tally'),
                     'to': ['victim', 'steady']})]
    app = run_script(script, heads, queue_size=20)
    victim = app.outcome
    accepted = tally.value('pump.accepted.victim')
    handled = tally.value('victim.handled')
    lost = app.lost['victim']
    print(f'\nkill -9 of a head process under load, {KILLS} times: detected and its loss '
          f'counted in {statistics.median(detected) * 1000:.1f} ms (median), '
          f'{max(detected) * 1000:.1f} ms (max); running again after '
          f'{statistics.median(restarted) * 1000:.0f} ms (median, backoff 50 ms included); '
          f'{accepted} accepted = {handled} handled + {lost} counted lost + '
          f'{accepted - handled - lost} in hand at a kill')
    assert victim['exits'] == KILLS and app.exit_code == 0
    assert max(detected) < 1.0  # the sentinel wakes the main head at once (measured: above)
    # The steady head's stream, beside the kills: every accepted envelope, once, in order.
    assert tally.value('steady.handled') == tally.value('pump.accepted.steady') > 0
    assert tally.value('steady.disorder') == 0
    # The victim: every accepted envelope handled or counted lost. A kill may fall between an
    # envelope leaving the queue and the sink counting it: at most one such per kill. (Whether
    # any was still queued at a kill is up to the scheduler: a CI run once found none, 0 lost.)
    assert accepted - KILLS <= handled + lost <= accepted, (accepted, handled, lost)
    leftover_processes()


@pytest.mark.timeout(60)
def test_a_stopped_head_fills_its_queue_then_its_loss_is_counted_at_shutdown(tmp_path):
    tally = Tally(tmp_path / 'tally')

    def script(main):
        until(main, lambda: tally.value('victim.handled') > 100, timeout=20)
        os.kill(state(main, 'victim')['pid'], signal.SIGSTOP)
        refused = tally.value('pump.refused.victim')
        until(main, lambda: tally.value('pump.refused.victim') > refused + 100, timeout=20)

    heads = [(Sink, {'name': 'victim', 'mode': 'process', 'tally': str(tmp_path / 'tally')}),
             (Pump, {'name': 'pump', 'mode': 'process', 'tally': str(tmp_path / 'tally'),
                     'to': ['victim']})]
    app = run_script(script, heads, queue_size=20, threads_timeout=1.0)
    accepted = tally.value('pump.accepted.victim')
    handled = tally.value('victim.handled')
    lost = app.lost['victim']
    # Senders got QueueFull while it was stopped; at the end it was killed with its queue full.
    assert lost >= 20 and accepted - 1 <= handled + lost <= accepted, (accepted, handled, lost)


@pytest.mark.timeout(60)
def test_killing_the_fork_server_does_not_stop_the_application(leftover_processes):
    def script(main):
        from multiprocessing import forkserver

        assert ask(main, 'echo', 'ping', 'before') == 'before'
        first = state(main, 'echo')
        os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)
        # Its children die with it; the restart needs a new fork server.
        until(main, lambda: state(main, 'echo')['generation'] > first['generation']
              and state(main, 'echo')['state'] == 'running', timeout=20)
        return ask(main, 'echo', 'ping', 'after'), state(main, 'echo')

    app = run_script(script, [(Echo, {'mode': 'process', 'restart': 'always'})])
    answer, echo = app.outcome
    assert answer == 'after' and echo['exits'] >= 1 and app.exit_code == 0
    leftover_processes()
