"""The options of add_process: checked once, each bad one named."""

from __future__ import annotations

import json

import pytest

from heads import Echo
from polycephaly_ros import ConfigurationError, Process
from polycephaly_ros.spec import PROCESS, THREAD, head_spec

pytestmark = pytest.mark.fast
DEFAULTS = dict(name=None, mode='thread', frequency=None, autostart=True, bound_shutdown=True,
                restart='never', max_restarts=3, restart_window=10.0, restart_backoff=(0.1, 10.0),
                let_it_crash=None)


def spec(ref=Echo, *args, **options):
    return head_spec(ref, args, {}, **{**DEFAULTS, **options})


@pytest.mark.parametrize('mode, kind', [('thread', THREAD), ('Thread', THREAD), ('t', THREAD),
                                        ('process', PROCESS), ('forked', PROCESS), ('P', PROCESS)])
def test_modes_are_taken_in_any_case_and_in_the_seed_s_words(mode, kind):
    assert spec(mode=mode).mode == kind


def test_a_head_is_named_after_its_class_or_module_in_lower_case():
    assert spec().name == 'echo'
    assert spec(name='Desk').name == 'desk'

    class Process_(Process):
        pass
    Process_.__name__, Process_.__module__ = 'Process', 'robot.arm'
    assert spec(Process_).name == 'arm'  # (the seed's addProcess(module))


def test_a_module_means_its_class_named_process():
    with pytest.raises(ConfigurationError, match='is not a head'):
        spec(json)  # (a module with no class named Process)
    with pytest.raises(ConfigurationError, match='is not a head'):
        spec(dict)


@pytest.mark.parametrize('options, message', [
    (dict(mode='fiber'), 'mode of head .* "thread" or "process"'),
    (dict(restart='sometimes'), 'restart of head'),
    (dict(frequency=0), 'frequency'),
    (dict(restart_backoff=(2.0, 1.0)), 'restart_backoff'),
    (dict(name='9lives'), 'invalid head name'),
])
def test_a_bad_option_is_named(options, message):
    with pytest.raises(ConfigurationError, match=message):
        spec(**options)


def test_a_process_head_must_be_importable_and_its_arguments_picklable():
    class Local(Process):
        pass
    with pytest.raises(ConfigurationError, match='importable'):
        spec(Local, mode='process')
    with pytest.raises(ConfigurationError, match='picklable'):
        spec(Echo, lambda: None, mode='process')
    assert spec(Local).target is Local  # a thread head need not be either


def test_a_bad_main_head_name_is_a_configuration_error_too():
    from polycephaly_ros import Application
    with pytest.raises(ConfigurationError, match='invalid head name'):
        Application(name='main head')
