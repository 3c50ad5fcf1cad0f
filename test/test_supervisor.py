"""Start order, crash detection, restart policies, die(), ebrake() and shutdown."""

import os
import signal
import threading
import time

import pytest

from harness import ask, run_ros_script, run_script, until
from heads import (BrakesAtBirth, CrashInLife, Echo, Freezer, LingersAfterDeath, SeesTheNextHead,
                   SlowDeath, Stopper, TimedEcho, Worker)
from polycephaly_ros import Application, ConfigurationError, Process, StateError, message_filter


def journal_lines(path):
    return path.read_text().split() if path.exists() else []


def events(path):
    lines = path.read_text().splitlines() if path.exists() else []
    return [tuple(line.split()[:2]) for line in lines]


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_every_head_is_born_and_dies_exactly_once(mode, tmp_path, leftover_processes):
    journal = tmp_path / 'journal'

    def script(main):
        return [ask(main, name, 'ping', name) for name in ('one', 'two', 'three')]

    heads = [(Echo, {'name': n, 'mode': mode, 'journal': str(journal)}) for n in ('one', 'two', 'three')]
    app = run_script(script, heads)
    assert app.outcome == ['one', 'two', 'three'] and app.exit_code == 0
    assert sorted(events(journal)) == sorted(
        [(n, e) for n in ('one', 'two', 'three') for e in ('birth', 'death')])
    leftover_processes()


def test_heads_start_in_the_order_added(tmp_path):
    journal = tmp_path / 'journal'
    heads = [(Echo, {'name': n, 'journal': str(journal)}) for n in ('c', 'a', 'b')]
    run_script(lambda main: until(main, lambda: len(events(journal)) == 3), heads)
    assert [e for e in events(journal) if e[1] == 'birth'] == [('c', 'birth'), ('a', 'birth'),
                                                               ('b', 'birth')]


def test_autostart_false_waits_for_start():
    def script(main):
        states = {s['name']: s['state'] for s in main.application.status()}
        main.application.start('echo')
        return states, ask(main, 'echo', 'ping', 'up')

    states, answer = run_script(script, [(Echo, {'autostart': False, 'mode': 'process'})]).outcome
    assert states == {'echo': 'stopped'} and answer == 'up'


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_crash_is_detected_and_restarted_on_failure(mode, caplog):
    def script(main):
        first = ask(main, 'echo', 'whoami')
        main.send('echo', 'crash', 'boom')
        until(main, lambda: main.application.status()[0]['generation'] == 2)
        second = ask(main, 'echo', 'whoami')
        return first, second, main.application.status()[0]

    first, second, status = run_script(
        script, [(Echo, {'mode': mode, 'restart': 'on_failure', 'let_it_crash': True})]).outcome
    assert status['exits'] == 1 and status['state'] == 'running'
    assert "head 'echo' failed" in caplog.text and 'asked to crash: boom' in caplog.text
    if mode == 'process':
        assert first['pid'] != second['pid']


def test_killed_process_is_detected_at_once_and_restarted(caplog):
    def script(main):
        pid = ask(main, 'echo', 'whoami')['pid']
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        until(main, lambda: main.application.status()[0]['generation'] == 2)
        detected = time.monotonic() - killed
        return pid, ask(main, 'echo', 'whoami')['pid'], detected

    old, new, detected = run_script(
        script, [(Echo, {'mode': 'process', 'restart': 'on_failure'})]).outcome
    # Nothing polls for dead heads: only the process's sentinel can wake the main head, so a
    # death noticed well within the 10 s until() allows is noticed by that event.
    assert old != new and detected < 5
    assert 'killed by signal SIGKILL' in caplog.text


def test_never_policy_leaves_a_crashed_head_stopped_and_the_app_running(caplog):
    def script(main):
        main.send('echo', 'crash', 'once')
        until(main, lambda: main.application.status()[0]['state'] == 'stopped')
        return ask(main, 'other', 'ping', 'still here')

    app = run_script(script, [(Echo, {'mode': 'process', 'let_it_crash': True}),
                              (Echo, {'name': 'other'})])
    assert app.outcome == 'still here' and app.exit_code == 0


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_too_many_restarts_stop_the_application_with_a_reason(mode, tmp_path, leftover_processes):
    journal = tmp_path / 'journal'

    def script(main):
        until(main, lambda: main.stopping, timeout=20)

    app = run_script(script, [(CrashInLife, {'mode': mode, 'restart': 'always', 'max_restarts': 2,
                                             'restart_window': 30, 'journal': str(journal)})])
    assert app.exit_code == 1
    assert "'crashinlife' needed more than 2 restart(s) within 30 s" in app.reason
    assert 'life failed on purpose' in app.reason
    births = [e for e in events(journal) if e[1] == 'birth']
    deaths = [e for e in events(journal) if e[1] == 'death']
    assert len(births) == len(deaths) == 3
    leftover_processes()


def test_head_failing_every_loop_can_still_be_stopped(tmp_path):
    def script(main):
        until(main, lambda: main.application.status()[0]['exits'] >= 3)
        main.application.stop('crashinlife')
        return main.application.status()[0]['state']

    app = run_script(script, [(CrashInLife, {'mode': 'thread', 'restart': 'always',
                                             'max_restarts': 1000})])
    assert app.outcome == 'stopped' and app.exit_code == 0


def test_die_stops_only_that_head():
    def script(main):
        main.send('echo', 'quit')
        until(main, lambda: main.application.status()[0]['state'] == 'stopped')
        return main.application.status()[0], ask(main, 'other', 'ping', 'alive')

    status, alive = run_script(script, [(Echo, {'mode': 'process', 'restart': 'on_failure'}),
                                        (Echo, {'name': 'other', 'mode': 'process'})]).outcome
    assert status['last_error'] is None and status['exits'] == 1 and alive == 'alive'


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_ebrake_from_any_head_stops_everything_and_reports_the_reason(mode, tmp_path,
                                                                      leftover_processes):
    journal = tmp_path / 'journal'

    def script(main):
        main.send('echo', 'brake', 'battery on fire')
        until(main, lambda: main.stopping)

    heads = [(Echo, {'mode': mode, 'journal': str(journal)}),
             (Echo, {'name': 'bystander', 'mode': 'process', 'bound_shutdown': False,
                     'journal': str(journal)})]
    started = time.monotonic()
    app = run_script(script, heads, threads_timeout=60)
    assert time.monotonic() - started < 30  # unbound heads are stopped too: no threads_timeout wait
    assert app.exit_code == 1
    assert app.reason == "emergency brake from 'echo': battery on fire"
    assert sorted(events(journal)) == [('bystander', 'birth'), ('bystander', 'death'),
                                       ('echo', 'birth'), ('echo', 'death')]
    leftover_processes()


def test_heads_stopped_before_their_turn_are_neither_born_nor_die(tmp_path, leftover_processes):
    journal = tmp_path / 'journal'
    heads = [(BrakesAtBirth, {'name': 'first', 'reason': 'no go'}),
             (Echo, {'name': 'second', 'mode': 'process', 'journal': str(journal)}),
             (Echo, {'name': 'third', 'journal': str(journal)})]
    app = run_script(lambda main: until(main, lambda: False), heads)
    assert app.exit_code == 1 and app.reason == "emergency brake from 'first': no go"
    assert events(journal) == []
    assert [(h['name'], h['exits'], h['last_error']) for h in app.status()] == [
        ('first', 1, None), ('second', 1, None), ('third', 1, None)]
    leftover_processes()


def test_main_head_ebrake_and_poison_pill():
    def brake(main):
        main.ebrake('from main')
        until(main, lambda: main.stopping)

    app = run_script(brake)
    assert app.exit_code == 1 and 'from main' in app.reason

    def wait(main):
        until(main, lambda: main.stopping)

    app = run_script(wait, [(Stopper, {'mode': 'process', 'pill': 'STOP!'})], ppill='STOP!')
    assert app.exit_code == 0 and app.reason == "poison pill from 'stopper'"


def test_unbound_head_finishes_its_work_before_the_application_ends(tmp_path):
    def script(main):
        return 'main done'  # main ends at once; the worker is not bound to it

    app = run_script(script, [(Worker, {'mode': 'process', 'bound_shutdown': False, 'steps': 5,
                                       'frequency': 20})])
    assert [e['body'] for e in app.main.received if e['subject'] == 'finished'] == [5]


def test_heads_that_do_not_stop_are_terminated_then_killed(tmp_path, leftover_processes, caplog):
    journal = tmp_path / 'journal'
    heads = [(SlowDeath, {'name': 'slow', 'mode': 'process', 'seconds': 60, 'journal': str(journal)}),
             (SlowDeath, {'name': 'stubborn', 'mode': 'process', 'seconds': 60, 'ignore_term': True,
                          'journal': str(journal)})]

    def script(main):
        until(main, lambda: len(events(journal)) == 2)

    started = time.monotonic()
    app = run_script(script, heads, threads_timeout=1)
    assert time.monotonic() - started < 40  # escalated after 1 s + 2 s, not after the 60 s deaths
    assert ('slow', 'dying') in events(journal) and ('slow', 'death') not in events(journal)
    assert "head 'slow' did not stop within 1 s: terminating it" in caplog.text
    assert "head 'stubborn' ignored SIGTERM: killing it" in caplog.text
    assert app.exit_code == 0
    leftover_processes()


def test_a_head_process_that_does_not_end_after_death_is_ended_by_its_alarm(
        leftover_processes, caplog):
    def script(main):
        main.application.stop('lingers')
        return main.application.status()[0]

    started = time.monotonic()
    app = run_script(script, [(LingersAfterDeath, {'name': 'lingers', 'mode': 'process'})],
                     threads_timeout=60)
    # Ended by its alarm 2 s after death(), not after threads_timeout: its report was clean.
    assert time.monotonic() - started < 30
    assert app.outcome['state'] == 'stopped' and app.outcome['last_error'] is None
    assert 'its alarm ended it' in caplog.text
    leftover_processes()


def test_heads_stop_in_parallel(tmp_path):
    journal = tmp_path / 'journal'
    heads = [(SlowDeath, {'name': f'slow{i}', 'mode': 'process', 'seconds': 3.0,
                          'journal': str(journal)}) for i in range(4)]

    def script(main):
        until(main, lambda: len(events(journal)) == 4)  # every one born

    run_script(script, heads, threads_timeout=60)
    deaths = [e for e in events(journal) if e[1] in ('dying', 'death')]
    # Side by side: every head starts dying before any has finished (one by one, each head's
    # 'death' would come before the next head's 'dying').
    assert [e[1] for e in deaths] == ['dying'] * 4 + ['death'] * 4


def test_runtime_control_from_the_main_head():
    def script(main):
        app = main.application
        pid = ask(main, 'echo', 'whoami')['pid']
        app.restart('echo')
        status = app.status()[0]
        return pid, ask(main, 'echo', 'whoami')['pid'], status

    old, new, status = run_script(script, [(Echo, {'mode': 'process'})]).outcome
    assert old != new and status['generation'] == 2 and status['state'] == 'running'


def test_two_applications_at_once_in_one_interpreter_share_nothing():
    outcomes: dict[str, object] = {}

    def run(tag: str) -> None:
        def script(main):
            main.add_filter(lambda e: None, subject='only-here')  # on this instance only
            answers = [ask(main, 'echo', 'whoami')['kwargs']['tag'] for _ in range(20)]
            return answers, sum(1 for _ in main._filters)

        outcomes[tag] = run_script(script, [(Echo, {'tag': tag})], handle_signals=False).outcome

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ('a', 'b')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Same head names and classes, at the same time: each talks to its own echo only, and a
    # filter added on one main head is not on the other.
    assert outcomes == {'a': (['a'] * 20, 2), 'b': (['b'] * 20, 2)}



def test_configuration_errors_name_the_problem():
    app = Application()  # (each option of add_process: test_spec.py)
    with pytest.raises(ConfigurationError, match='mode of head .* "thread" or "process"'):
        app.add_process(Echo, mode='fiber')
    app.add_process(Echo)
    with pytest.raises(ConfigurationError, match="already a head named 'echo'"):
        app.add_process(Echo)
    with pytest.raises(ConfigurationError, match='start_method'):
        Application(start_method='fork')
    with pytest.raises(ConfigurationError, match='queue_type'):
        Application(queueType='LIFO')
    with pytest.raises(ConfigurationError, match='queue_size must be a whole number >= 0'):
        Application(queue_size=-1)
    # (an unknown option goes to the main head, a near miss with a warning: test_compat.py)


def test_the_poison_pill_is_exact_and_case_sensitive():
    def script(main):
        main.send('main', 'stop!')         # not the pill: an ordinary envelope
        main.send('main', 'STOP! ')
        until(main, lambda: len(main.received) == 2)
        return main.stopping, [e['subject'] for e in main.received]

    app = run_script(script, ppill='STOP!')
    assert app.outcome == (False, ['stop!', 'STOP! '])
    assert app.reason is None


def test_restarts_back_off_and_show_in_status(tmp_path):
    births = tmp_path / 'births'
    seen_restarting: list[dict] = []

    def restarted(main, generation: int) -> bool:
        echo = main.application.status()[0]
        if echo['state'] == 'restarting':
            seen_restarting.append(echo)
        return echo['generation'] > generation and echo['state'] == 'running'

    def script(main):
        for _ in range(3):  # three crashes, each restarted after a longer wait
            generation = main.application.status()[0]['generation']
            main.send('echo', 'crash', 'again')
            until(main, lambda: restarted(main, generation))

    run_script(script, [(TimedEcho, {'name': 'echo', 'restart': 'on_failure',
                                     'let_it_crash': True,
                                     'restart_backoff': (0.2, 10), 'births': str(births)})])
    times = [float(line.split()[1]) for line in births.read_text().splitlines()]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Each restart waited its backoff (0.2, 0.4, 0.8 s) at least, longer each time.
    assert len(times) == 4 and all(g >= w for g, w in zip(gaps, (0.2, 0.4, 0.8))), gaps
    assert seen_restarting and all(s['restart_in'] is not None for s in seen_restarting)


def test_an_abandoned_thread_head_never_starts_again():
    thaw = threading.Event()

    def script(main):
        app = main.application
        main.send('stuck', 'freeze')
        until(main, lambda: app.status()[0]['state'] == 'running')
        app.stop('stuck')  # it cannot stop: abandoned after threads_timeout
        state = app.status()[0]['state']
        try:
            app.start('stuck')
        except StateError as exc:
            refused = str(exc)
        else:
            refused = None
        thaw.set()
        return state, refused

    app = run_script(script, [(Freezer, {'name': 'stuck', 'thaw': thaw,
                                         'restart': 'always'})], threads_timeout=0.5)
    state, refused = app.outcome
    assert state == 'abandoned' and 'abandoned' in refused


class SlowBirth(Process):
    """A head whose birth() waits for the Event kwargs['gate'], then fails if kwargs['fail']."""

    def birth(self) -> None:
        assert self.kwargs['gate'].wait(30)
        if self.kwargs.get('fail'):
            raise RuntimeError('birth failed')


@pytest.mark.parametrize('fail', [False, True])
def test_start_with_done_calls_back_when_born_and_the_main_head_serves_meanwhile(fail):
    gate = threading.Event()

    def script(main):
        results = []
        main.application.start('slow', results.append)
        meanwhile = ask(main, 'echo', 'ping', 'served meanwhile')  # (before: after the birth)
        waiting = list(results)
        gate.set()
        until(main, lambda: results)
        return meanwhile, waiting, results

    app = run_script(script, [(SlowBirth, {'name': 'slow', 'gate': gate, 'fail': fail,
                                           'autostart': False}),
                              (Echo, {'name': 'echo'})])
    meanwhile, waiting, results = app.outcome
    assert meanwhile == 'served meanwhile' and waiting == []
    if fail:
        assert isinstance(results[0], StateError) and 'birth failed' in str(results[0])
    else:
        assert results == [None]


class MeetsAtBirth(Process):
    """A head whose birth() waits at the Barrier kwargs['barrier'] for the other heads'."""

    def birth(self) -> None:
        self.kwargs['barrier'].wait(self.kwargs['wait'])


@pytest.mark.parametrize('parallel', [False, True])
def test_parallel_start_runs_births_together_while_the_default_runs_them_in_order(parallel):
    barrier = threading.Barrier(2)
    wait = 20.0 if parallel else 0.5  # (in order, the first birth waits for one never started)

    def script(main):
        return [(h['name'], h['state']) for h in main.application.status()]

    app = run_script(script, [(MeetsAtBirth, {'name': 'first', 'barrier': barrier, 'wait': wait}),
                              (MeetsAtBirth, {'name': 'second', 'barrier': barrier,
                                              'wait': wait})],
                     parallel_start=parallel)
    states = dict(app.outcome)
    if parallel:
        assert states == {'first': 'running', 'second': 'running'}
    else:  # the second birth came only once the first had failed: they never met
        assert states == {'first': 'stopped', 'second': 'stopped'}
        assert all('BrokenBarrierError' in h['last_error'] for h in app.status())


def test_heads_get_ready_together_and_are_born_in_order(tmp_path):
    journal = tmp_path / 'journal'
    heads = [(SeesTheNextHead, {'name': 'first', 'mode': 'process', 'next': 'second',
                                'journal': str(journal)}),
             (Echo, {'name': 'second', 'mode': 'process', 'journal': str(journal)})]

    def script(main):
        return [(h['name'], h['state'], h['last_error']) for h in main.application.status()]

    app = run_ros_script(script, heads)
    assert app.outcome == [('first', 'running', None), ('second', 'running', None)]
    assert events(journal)[:2] == [('first', 'birth'), ('second', 'birth')]


class SendsOnAtBirth(Process):
    """A head whose birth() sends 'ping' to kwargs['to'] and whose filter keeps the reply."""

    def birth(self) -> None:
        self.send(self.kwargs['to'], 'ping', 'early')

    @message_filter(subject='reply')
    def answer(self, envelope: dict) -> None:
        self.kwargs['seen'].append(envelope['body'])


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_mail_to_a_head_not_yet_born_waits_for_its_birth(mode, tmp_path):
    journal = tmp_path / 'journal'
    seen: list = []
    heads = [(SendsOnAtBirth, {'name': 'first', 'to': 'second', 'seen': seen}),
             (Echo, {'name': 'second', 'mode': mode, 'journal': str(journal)})]
    run_script(lambda main: until(main, lambda: seen), heads)
    assert seen == ['early'] and events(journal)[:1] == [('second', 'birth')]
