"""Shutdown under full load: every envelope accepted is handled or counted, by every stop path.

Two pumps send to two sinks as fast as they can; once mail flows the application is stopped
by one of its stop paths, and then, for each sink, the sends that returned must equal the
envelopes it handled plus those the application reports it did not (``Application.lost``):
nothing silent. ``POLYCEPHALY_RELIABILITY_REPEAT`` (default 3) repeats each case.
"""

from __future__ import annotations

import os
import signal

import pytest

from accounting import Pump, Sink, Tally
from harness import run_script, until

REPEAT = int(os.environ.get('POLYCEPHALY_RELIABILITY_REPEAT', '3'))
SINKS = ('sink_a', 'sink_b')
PUMPS = ('pump_a', 'pump_b')
STOP_PATHS = ('die', 'pill', 'sigterm', 'sigint', 'ebrake', 'threads_timeout')


def heads(mode: str, tally: str) -> list:
    return ([(Sink, {'name': n, 'mode': mode, 'tally': tally}) for n in SINKS]
            + [(Pump, {'name': n, 'mode': mode, 'tally': tally, 'to': list(SINKS)})
               for n in PUMPS])


def refused(tally: Tally, sink: str) -> int:
    return sum(tally.value(f'{p}.refused.{sink}') for p in PUMPS)


def stop(main, how: str, tally: Tally) -> None:
    """Stop the application the way the case says, from the main head's script."""
    app = main.application
    if how == 'pill':
        main.send(main.name, app.poison_pill)
    elif how == 'sigterm':
        os.kill(os.getpid(), signal.SIGTERM)
    elif how == 'sigint':
        os.kill(os.getpid(), signal.SIGINT)
    elif how == 'ebrake':
        main.ebrake('reliability test')
    elif how == 'threads_timeout':
        main.wait_for_reply(main.send('sink_a', 'freeze'), timeout=10)  # it will not stop
        full = refused(tally, 'sink_a')
        until(main, lambda: refused(tally, 'sink_a') > full + 10)  # its queue is full
    # 'die' and 'threads_timeout': the script returns and the harness's main head dies


@pytest.mark.timeout(60)
@pytest.mark.parametrize('round_', range(REPEAT))
@pytest.mark.parametrize('how', STOP_PATHS)
@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_every_accepted_envelope_is_handled_or_counted(mode, how, round_, tmp_path,
                                                       leftover_processes):
    tally = Tally(tmp_path / 'tally')

    def script(main):
        until(main, lambda: all(tally.value(f'{s}.handled') >= 200 for s in SINKS), timeout=20)
        stop(main, how, tally)
        if how not in ('die', 'threads_timeout'):
            until(main, lambda: main.stopping, timeout=10)

    app = run_script(script, heads(mode, str(tmp_path / 'tally')), queue_size=50,
                     threads_timeout=1.0)
    assert app.exit_code == (1 if how == 'ebrake' else 0), app.reason
    lost = app.lost
    for sink in SINKS:
        accepted = sum(tally.value(f'{p}.accepted.{sink}') for p in PUMPS)
        handled = tally.value(f'{sink}.handled')
        assert accepted > 0 and accepted == handled + lost[sink], (
            f'{sink}: {accepted} accepted, {handled} handled, {lost[sink]} counted as lost: '
            f'{accepted - handled - lost[sink]} silent')
        assert tally.value(f'{sink}.disorder') == 0
    if how == 'threads_timeout':  # killed (a process) or abandoned (a thread) with a full queue
        assert lost['sink_a'] >= 50
    leftover_processes()
