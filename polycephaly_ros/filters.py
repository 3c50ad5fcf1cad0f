"""Route envelopes to callbacks by criteria on their headers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .envelope import INTERNAL
from .errors import ConfigurationError

Callback = Callable[[dict], Any]
_FILTERS_ATTR = '_polycephaly_filters'


_Test = tuple[str, 'str | None', 'Callable[[Any], bool] | None']


def _compile(header: str, criterion: Any) -> _Test:
    """Return (header, literal, test): the value must equal literal, or pass test."""
    if isinstance(criterion, str) and re.escape(criterion) == criterion:
        return header, criterion, None  # no metacharacters: a full match is equality, cheaper
    return header, None, _test(header, criterion)


def _test(header: str, criterion: Any) -> Callable[[Any], bool]:
    """Return a test of one header value against a criterion that is not a literal string."""
    if isinstance(criterion, str):
        try:
            criterion = re.compile(criterion)
        except re.error as exc:
            raise ConfigurationError(f'filter on {header!r}: bad regular expression: {exc}') from None
    if isinstance(criterion, re.Pattern):
        pattern = criterion
        return lambda v: pattern.fullmatch(v if isinstance(v, str) else str(v)) is not None
    if callable(criterion):
        return lambda v: bool(criterion(v))
    return lambda v: v == criterion


@dataclass
class Filter:
    """One filter: criteria on headers, the route it listens on and its callback."""

    callback: Callback
    criteria: Mapping[str, Any]
    route: str | None = INTERNAL
    tests: tuple[_Test, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not callable(self.callback):
            raise ConfigurationError(f'filter callback must be callable, not {self.callback!r}')
        self.tests = tuple(_compile(h, c) for h, c in self.criteria.items())

    @property
    def catch_all(self) -> bool:
        """Tell whether this filter has no criteria and so runs only when nothing else matched."""
        return not self.tests

    def matches(self, envelope: Mapping[str, Any]) -> bool:
        """Tell whether every criterion holds for envelope (a missing header never matches)."""
        if self.route is not None and envelope.get('route', INTERNAL) != self.route:
            return False
        return _holds(self.tests, envelope)


class FilterSet:
    """The ordered filters of one head."""

    def __init__(self) -> None:
        self._filters: list[Filter] = []

    def add(self, callback: Callback, route: str | None = INTERNAL, **criteria: Any) -> Filter:
        """Add a filter; string criteria are regular expressions matched against the whole value."""
        f = Filter(callback, criteria, route)
        self._filters.append(f)
        return f

    def remove(self, f: Filter) -> None:
        """Remove a filter added before."""
        self._filters.remove(f)

    def __iter__(self):
        return iter(self._filters)

    def __len__(self) -> int:
        return len(self._filters)

    def dispatch(self, envelope: dict) -> int:
        """Run every matching filter in the order added (catch-alls only if none); return how many ran."""
        ran = 0
        route = envelope.get('route', INTERNAL)
        for f in self._filters:
            if f.tests and (f.route is None or f.route == route) and _holds(f.tests, envelope):
                f.callback(envelope)
                ran += 1
        if ran:
            return ran
        for f in self._filters:
            if not f.tests and f.matches(envelope):
                f.callback(envelope)
                ran += 1
        return ran


def _holds(tests: tuple[_Test, ...], envelope: Mapping[str, Any]) -> bool:
    for header, literal, test in tests:
        if header not in envelope:
            return False
        value = envelope[header]
        if literal is None:
            if not test(value):
                return False
        elif (value if type(value) is str else str(value)) != literal:
            return False
    return True


def message_filter(route: str | None = INTERNAL, **criteria: Any) -> Callable[[Callback], Callback]:
    """Mark a head method as a filter callback; the head installs it when it starts."""

    def mark(method: Callback) -> Callback:
        marks = list(getattr(method, _FILTERS_ATTR, ()))
        marks.append((route, dict(criteria)))
        setattr(method, _FILTERS_ATTR, marks)
        return method

    return mark


def declared_filters(head: object) -> Iterable[tuple[Callback, str | None, dict]]:
    """Yield (bound method, route, criteria) for each method of head marked by message_filter."""
    seen: set[str] = set()
    for klass in type(head).__mro__:
        for name, attr in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            for route, criteria in getattr(attr, _FILTERS_ATTR, ()):
                yield getattr(head, name), route, criteria
