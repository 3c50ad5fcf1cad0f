"""The updates head refuses to run outside the downtime window or while busy, runs inside."""

from __future__ import annotations

import copy
import datetime as dt

from harness import ask, run_script, until
from polycephaly_ros.robot import config as cfg
from polycephaly_ros.robot.updates import UpdatesHead, in_window, next_opening

MON = dt.datetime(2026, 11, 23, 12, 0)  # a Monday


def window(start, end, days=cfg.DAYS):
    return {'start': start, 'end': end, 'days': list(days)}


def test_window_arithmetic():
    assert in_window(window('09:00', '17:00'), MON)
    assert not in_window(window('13:00', '17:00'), MON)
    assert not in_window(window('09:00', '17:00', ['tue']), MON)
    night = window('22:00', '05:00', ['sun'])  # opens Sunday night, closes Monday morning
    assert in_window(night, MON.replace(hour=4, minute=59))
    assert not in_window(night, MON.replace(hour=5))
    assert not in_window(night, MON.replace(hour=23))
    assert in_window(window('00:00', '00:00', ['mon']), MON)  # the whole day
    assert next_opening(window('02:00', '05:00'), MON) == dt.datetime(2026, 11, 24, 2, 0)
    assert next_opening(window('02:00', '05:00', ['sun']), MON) == dt.datetime(2026, 11, 29, 2, 0)


def around_now(minutes_from: int, minutes_to: int) -> dict:
    now = dt.datetime.now()
    start = now + dt.timedelta(minutes=minutes_from)
    end = now + dt.timedelta(minutes=minutes_to)
    return window(f'{start:%H:%M}', f'{end:%H:%M}')


def settings(tmp_path, **changes):
    s = copy.deepcopy(cfg.DEFAULTS['service']['heads']['updates'])
    s['actions'] = {'mark': {'command': ['sh', '-c', f'echo ran > {tmp_path}/ran'],
                             'description': 'leave a mark', 'pending': False}}
    s.update(changes)
    return s


def run_updates(script, s):
    return run_script(script, [(UpdatesHead, {'name': 'updates', 'mode': 'thread',
                                              'frequency': 20, 'settings': s,
                                              'notify': 'main'})], ros=False).outcome


def test_refuses_outside_the_window_even_when_idle(tmp_path):
    s = settings(tmp_path, dry_run=False, window=around_now(120, 180))

    def script(main):
        first = ask(main, 'updates', 'schedule', {'action': 'mark'})
        idle = ask(main, 'updates', 'robot_idle', {'idle': True})
        state = ask(main, 'updates', 'updates')
        unknown = main.wait_for_reply(main.send('updates', 'schedule', {'action': 'nope'}), 10)
        return first, idle, state, unknown

    first, idle, state, unknown = run_updates(script, s)
    assert first['decision']['outcome'] == 'deferred'
    assert 'outside the downtime window' in first['decision']['reason']
    assert 'next opens' in first['decision']['reason']
    assert idle['pending'] == ['mark'] and state['pending'] == ['mark']
    assert state['in_window'] is False and state['dry_run'] is False
    assert [d['outcome'] for d in state['decisions']] == ['deferred']  # logged once, not per run
    assert unknown['subject'] == 'error' and 'no maintenance action named' in unknown['body']['error']
    assert not (tmp_path / 'ran').exists()


def test_inside_the_window_waits_for_idle_then_dry_runs(tmp_path):
    s = settings(tmp_path, window=around_now(-5, 60))

    def script(main):
        first = ask(main, 'updates', 'schedule', 'mark')
        ask(main, 'updates', 'robot_idle', {'idle': True})
        state = ask(main, 'updates', 'updates')
        return first, state

    first, state = run_updates(script, s)
    assert first['decision']['outcome'] == 'deferred'
    assert 'not reported idle' in first['decision']['reason']
    assert state['pending'] == []
    outcomes = [d['outcome'] for d in state['decisions']]
    assert outcomes == ['deferred', 'dry-run']
    assert 'would run' in state['decisions'][-1]['reason']
    assert not (tmp_path / 'ran').exists()  # dry run: nothing ran


def test_runs_for_real_only_when_dry_run_is_off(tmp_path):
    s = settings(tmp_path, dry_run=False, require_idle=False, window=around_now(-5, 60))

    def script(main):
        return ask(main, 'updates', 'schedule', {'action': 'mark'})

    answer = run_updates(script, s)
    assert answer['decision']['outcome'] == 'ran' and answer['decision']['returncode'] == 0
    assert (tmp_path / 'ran').read_text() == 'ran\n'


def test_pending_actions_run_when_the_robot_becomes_idle(tmp_path):
    s = settings(tmp_path, window=around_now(-5, 60))
    s['actions']['mark']['pending'] = True

    def script(main):
        until(main, lambda: any(m['subject'] == 'updates_state' for m in main.received))
        before = ask(main, 'updates', 'updates')
        main.send('updates', 'robot_idle', True)
        until(main, lambda: not ask(main, 'updates', 'updates')['pending'])
        return before, ask(main, 'updates', 'updates')

    before, after = run_updates(script, s)
    assert before['pending'] == ['mark'] and before['decisions'][-1]['outcome'] == 'deferred'
    assert after['decisions'][-1]['outcome'] == 'dry-run'
