"""The seed's names: a Polycephaly program's camelCase methods and options keep working."""

from __future__ import annotations

import logging
import threading

import pytest

import polycephaly_ros as polycephaly
from harness import ask, run_script
from heads import Blocked, Echo
from polycephaly_ros.compat import NOTICE, Logger, pf

pytestmark = pytest.mark.fast


def test_seed_options_of_the_application_and_of_a_head():
    app = polycephaly.Application(queueSize=5, queueType='Priority', forceStop=True,
                                  threadsTimeout=3)
    assert (app.queue_size, app.queue_type, app.force_stop, app.threads_timeout) == \
        (5, 'priority', True, 3.0)
    assert app.globalFrequency(15) == 15.0 and app.global_frequency() == 15.0
    spec = app.addProcess(Echo, name='hello', mode='Thread', boundShutdown=False, abc=123)
    assert spec.bound_shutdown is False and spec.kwargs == {'abc': 123}
    with pytest.raises(TypeError, match="both 'queueSize' and 'queue_size'"):
        polycephaly.Application(queueSize=5, queue_size=6)


def test_queue_size_0_is_unbounded_as_in_the_seed():
    gate = threading.Event()

    def script(main):
        for i in range(3000):  # three times the default queue_size, none taken out meanwhile
            main.send('blocked', 'item', i, timeout=0)
        gate.set()
        return len(ask(main, 'blocked', 'report')['items'])

    app = run_script(script, [(Blocked, {'name': 'blocked', 'gate': gate})], queueSize=0)
    assert app.queue_size == 2**31 - 1 and app.outcome == 3000


def test_unknown_application_options_go_to_the_main_head_as_the_seed_does(caplog):
    def script(main):
        return main.args, main.kwargs

    app = run_script(script, [], main_args=('Arg1',), queuesize=5, robot='r2')
    assert app.outcome == (('Arg1',), {'queuesize': 5, 'robot': 'r2'})
    # A close miss of an option is said, not silently a kwarg only.
    assert "'queuesize' is no option of Application()" in caplog.text
    assert "did you mean 'queue_size'?" in caplog.text
    assert "'robot'" not in caplog.text


def test_seed_methods_run_a_seed_style_exchange():
    def script(main):
        f = main.addFilter(lambda m: None, subject='x')
        main.removeFilter(f)
        message = main.send('echo', 'ping', 'Hello, World!')
        return main.waitForReply(message, timeout=10)['body']

    assert run_script(script, [(Echo, {})]).outcome == 'Hello, World!'


def test_seed_wait_for_reply_returns_an_empty_envelope_when_no_reply_comes():
    def script(main):
        message = main.send('echo', 'nobody answers this')  # (no filter of echo takes it)
        return main.waitForReply(message, timeout=0.2)

    assert run_script(script, [(Echo, {})]).outcome == {}


def test_the_seed_logger_has_notice_and_pf_pretty_prints(caplog):
    with caplog.at_level(logging.DEBUG):
        Logger('seed').notice('Start : %r', 'Hello, World!')
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == \
        [(NOTICE, "Start : 'Hello, World!'")]
    assert pf({'b': 1, 'a': 2}) == "{'a': 2, 'b': 1}"
