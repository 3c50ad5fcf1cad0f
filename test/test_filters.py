"""Filters: whole-value regular expressions, order, catch-alls and routes."""

import re

import pytest

from polycephaly_ros import ConfigurationError, Process, message_filter
from polycephaly_ros.filters import FilterSet, declared_filters

pytestmark = pytest.mark.fast


def envelope(**headers):
    return {'subject': 'salutation', 'sender': 'hello', 'threadindex': 1, **headers}


def test_string_criteria_match_the_whole_value():
    seen = []
    filters = FilterSet()
    filters.add(seen.append, subject='sal')
    assert filters.dispatch(envelope()) == 0
    filters.add(seen.append, subject='sal.*')
    assert filters.dispatch(envelope()) == 1 and len(seen) == 1


def test_seed_style_case_insensitive_pattern():
    filters = FilterSet()
    filters.add(lambda e: None, subject=r'(?i)^SALUTATION$')
    assert filters.dispatch(envelope()) == 1


def test_all_matching_filters_run_in_the_order_added():
    order = []
    filters = FilterSet()
    filters.add(lambda e: order.append('first'), subject='salutation')
    filters.add(lambda e: order.append('second'), sender='hel+o')
    filters.add(lambda e: order.append('never'), sender='nobody')
    assert filters.dispatch(envelope()) == 2
    assert order == ['first', 'second']


def test_catch_all_runs_only_when_nothing_else_matched():
    caught = []
    filters = FilterSet()
    filters.add(caught.append)
    filters.add(lambda e: None, subject='salutation')
    filters.dispatch(envelope())
    assert caught == []
    filters.dispatch(envelope(subject='other'))
    assert [e['subject'] for e in caught] == ['other']


def test_criteria_on_any_header_value_type():
    filters = FilterSet()
    filters.add(lambda e: None, threadindex='[2-9]')
    filters.add(lambda e: None, acme=123)
    filters.add(lambda e: None, size=lambda v: v > 10)
    filters.add(lambda e: None, pattern=re.compile('x+'))
    assert filters.dispatch(envelope()) == 0
    assert filters.dispatch(envelope(threadindex=2, acme=123, size=11, pattern='xxx')) == 4


def test_missing_header_never_matches():
    filters = FilterSet()
    filters.add(lambda e: None, acme='.*')
    assert filters.dispatch(envelope()) == 0


def test_filters_belong_to_a_route():
    filters = FilterSet()
    internal = []
    ros = []
    filters.add(internal.append, subject='salutation')
    filters.add(ros.append, route='ros', subject='salutation')
    filters.dispatch(envelope())
    filters.dispatch(envelope(route='ros'))
    assert len(internal) == 1 and len(ros) == 1
    assert ros[0]['route'] == 'ros'


def test_bad_regular_expression_is_named():
    with pytest.raises(ConfigurationError, match="subject.*regular expression"):
        FilterSet().add(lambda e: None, subject='(')


def test_decorated_methods_become_filters_per_instance():
    class Head(Process):
        @message_filter(subject='a')
        def on_a(self, message):
            pass

        @message_filter(subject='b', route='ros')
        def on_b(self, message):
            pass

    one, two = Head(), Head()
    found = [(cb.__func__.__name__, route, crit) for cb, route, crit in declared_filters(one)]
    assert found == [('on_a', 'internal', {'subject': 'a'}), ('on_b', 'ros', {'subject': 'b'})]
    assert next(iter(declared_filters(two)))[0].__self__ is two
