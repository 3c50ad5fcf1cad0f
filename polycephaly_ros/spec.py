"""How to build and run one sub-head: the options of ``add_process``, checked once.

A :class:`HeadSpec` is made by :func:`head_spec` when a head is added (before ``run()``) and
read by the supervisor and the head runtimes; it never changes afterwards.
"""

from __future__ import annotations

import pickle
import types
from dataclasses import dataclass
from typing import Any

from . import envelope as env
from . import restart as restart_policy
from .errors import ConfigurationError, EnvelopeError
from .head import Process, check_frequency

THREAD = 'thread'
PROCESS = 'process'
MODES = {'thread': THREAD, 'threaded': THREAD, 't': THREAD,
         'process': PROCESS, 'forked': PROCESS, 'fork': PROCESS, 'p': PROCESS}
#: A managed head's transitions (ros/lifecycle.py), each with the state it leads to.
TRANSITIONS = {'configure': 'inactive', 'activate': 'active', 'deactivate': 'inactive',
               'cleanup': 'unconfigured', 'shutdown': 'finalized'}
#: The states a managed head can be driven to, at its start and again after a restart.
PRIMARY = ('unconfigured', 'inactive', 'active')


@dataclass(frozen=True)
class HeadSpec:
    """How to build and run one sub-head."""

    name: str
    target: type[Process]
    args: tuple
    kwargs: dict
    mode: str
    frequency: float | None
    autostart: bool
    bound_shutdown: bool
    restart: str
    max_restarts: int
    restart_window: float
    restart_backoff: tuple[float, float] = restart_policy.BACKOFF
    let_it_crash: bool | None = None
    lifecycle: str | None = None  # a managed head: the state to drive it to once ready


def head_spec(ref: Any, args: tuple, kwargs: dict, *, name: str | None, mode: str,
              frequency: float | None, autostart: bool, bound_shutdown: bool, restart: str,
              max_restarts: int, restart_window: float, restart_backoff: tuple[float, float],
              let_it_crash: bool | None) -> HeadSpec:
    """Return the spec of a head added with these options; raise ConfigurationError naming one."""
    target = head_class(ref)
    head_name = checked_name(name or _default_name(ref, target))
    kind = MODES.get(str(mode).lower())
    if kind is None:
        raise ConfigurationError(f'mode of head {head_name!r} must be "thread" or "process", '
                                 f'not {mode!r}')
    if restart not in restart_policy.POLICIES:
        raise ConfigurationError(f'restart of head {head_name!r} must be one of '
                                 f'{", ".join(restart_policy.POLICIES)}, not {restart!r}')
    backoff = restart_policy.check_backoff(restart_backoff, head_name)
    lifecycle = lifecycle_goal(target, head_name)
    if kind == PROCESS:
        try:
            pickle.dumps((target, args, kwargs))
        except Exception as exc:
            raise ConfigurationError(
                f'head {head_name!r} runs as a process, so its class must be importable (module '
                f'top level) and its arguments picklable: {exc}') from exc
    return HeadSpec(head_name, target, tuple(args), dict(kwargs), kind,
                    None if frequency is None else check_frequency(frequency), bool(autostart),
                    bool(bound_shutdown), restart, int(max_restarts), float(restart_window),
                    backoff, None if let_it_crash is None else bool(let_it_crash), lifecycle)


def lifecycle_goal(target: type, name: str) -> str | None:
    """Return the state a managed head class asks for (None: not managed); check it."""
    wanted = getattr(target, 'lifecycle', False)
    if wanted is False or wanted is None:
        return None
    if wanted is True:
        return 'unconfigured'
    if wanted not in PRIMARY:
        raise ConfigurationError(f'lifecycle of head {name!r} must be False, True or one of '
                                 f'{", ".join(PRIMARY)}, not {wanted!r}')
    return wanted


def checked_name(name: str) -> str:
    """Return a head's name in lower case; raise ConfigurationError if it is no valid name."""
    try:
        return env.normalize_name(name)
    except EnvelopeError as exc:
        raise ConfigurationError(str(exc)) from None


def head_class(ref: Any) -> type[Process]:
    """Return the head class for ref: a Process subclass, or a module defining `Process`."""
    target = getattr(ref, 'Process', None) if isinstance(ref, types.ModuleType) else ref
    if not (isinstance(target, type) and issubclass(target, Process)):
        raise ConfigurationError(
            f'{ref!r} is not a head: give a polycephaly_ros.Process subclass or a module '
            'that defines one named Process')
    return target


def _default_name(ref: Any, target: type) -> str:
    if isinstance(ref, types.ModuleType) or target.__name__ == 'Process':
        return target.__module__.rsplit('.', 1)[-1]
    return target.__name__
