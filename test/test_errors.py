"""The error model: everything raised is a PolycephalyError, with the stdlib base one expects."""

from __future__ import annotations

import threading

import pytest

import polycephaly_ros
from harness import run_script
from heads import Echo
from polycephaly_ros import errors

pytestmark = pytest.mark.fast

STDLIB_BASES = {
    'EnvelopeError': ValueError, 'NotSerializable': ValueError, 'UnknownRecipient': LookupError,
    'Unreachable': LookupError, 'NoReply': TimeoutError, 'ConfigurationError': ValueError,
    'UnknownHead': LookupError, 'StateError': RuntimeError, 'RosError': RuntimeError,
}


@pytest.mark.parametrize('name', errors.__all__)
def test_every_error_is_exported_and_a_polycephaly_error(name):
    error = getattr(polycephaly_ros, name)
    assert error is getattr(errors, name)
    assert issubclass(error, polycephaly_ros.PolycephalyError)
    if name in STDLIB_BASES:
        assert issubclass(error, STDLIB_BASES[name])


def test_unreachable_is_caught_as_either_of_its_parents():
    assert issubclass(errors.Unreachable, errors.RecipientUnavailable)
    assert issubclass(errors.Unreachable, errors.UnknownRecipient)


def test_control_calls_raise_unknown_head_and_state_error():
    def script(main):
        app = main.application
        outcomes = {}
        for label, call in (('unknown', lambda: app.start('nobody')),
                            ('running', lambda: app.start('echo')),
                            ('add late', lambda: app.add_process(Echo, name='late'))):
            try:
                call()
            except polycephaly_ros.PolycephalyError as exc:
                outcomes[label] = type(exc).__name__
        other: list[str] = []

        def from_another_thread() -> None:
            try:
                app.status()
            except polycephaly_ros.StateError as exc:
                other.append(str(exc))

        thread = threading.Thread(target=from_another_thread)
        thread.start()
        thread.join(10)
        outcomes['other thread'] = other
        return outcomes

    app = run_script(script, [(Echo, {})])
    assert app.outcome == {'unknown': 'UnknownHead', 'running': 'StateError',
                           'add late': 'StateError',
                           'other thread': ["control heads from the main head's thread while "
                                            'the application runs']}
    with pytest.raises(polycephaly_ros.StateError, match='runs once'):
        app.run()
