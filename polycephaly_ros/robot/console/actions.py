"""What a paired phone may ask the service, checked at the edge, and the answers in plain words.

:func:`check_action` takes the JSON a phone POSTed and returns the one envelope (subject and
body) to send to the service, or raises :class:`BadAction`: only the subjects in
:data:`ACTIONS` pass, each with exactly its body (an action or head name of at most 64
characters, a boolean), never a control subject; the console may not stop or restart its own
head (the answer could not come back). :func:`describe` turns the service's answer into one
sentence for the page. Pure functions: safe from any thread.
"""

from __future__ import annotations

import re
from typing import Any

#: The subjects a phone may send, with the body key each takes and that key's kind.
ACTIONS: dict[str, tuple[str, str]] = {
    'schedule': ('action', 'name'), 'unschedule': ('action', 'name'),
    'robot_idle': ('idle', 'bool'),
    'start_head': ('head', 'name'), 'stop_head': ('head', 'name'),
    'restart_head': ('head', 'name'),
}
_NAME = re.compile(r'[a-z][a-z0-9_]{0,63}')


class BadAction(ValueError):
    """A request the console does not forward, with the reason."""


def check_action(payload: Any, console_head: str) -> tuple[str, dict[str, Any]]:
    """Return (subject, body) for the service from a phone's JSON, or raise BadAction."""
    if not isinstance(payload, dict) or set(payload) - {'subject', 'body'}:
        raise BadAction('send {"subject": ..., "body": {...}} and nothing else')
    subject = payload.get('subject')
    if not isinstance(subject, str) or subject not in ACTIONS:
        raise BadAction(f'the console sends only {", ".join(ACTIONS)}')
    key, kind = ACTIONS[subject]
    body = payload.get('body')
    if not isinstance(body, dict) or set(body) != {key}:
        raise BadAction(f'{subject} takes {{"{key}": ...}} and nothing else')
    value = body[key]
    if kind == 'bool':
        if not isinstance(value, bool):
            raise BadAction(f'{key} must be true or false')
    elif not isinstance(value, str) or not _NAME.fullmatch(value):
        raise BadAction(f'{key} must be a name (a-z, then a-z, 0-9 or _; at most 64)')
    if subject in ('stop_head', 'restart_head') and value == console_head:
        raise BadAction(f'the console cannot {subject.split("_")[0]} its own head '
                        f'({console_head!r}): do it on the robot\'s screen')
    return subject, {key: value}


def describe(subject: str, body: dict[str, Any], answer_subject: str, answer: Any) -> str:
    """Return the service's answer to one action as a sentence."""
    if answer_subject != 'reply':
        reason = answer.get('error') if isinstance(answer, dict) else answer
        return f'Refused: {reason}'
    answer = answer if isinstance(answer, dict) else {}
    if subject == 'schedule':
        decision = answer.get('decision') or {}
        outcome = decision.get('outcome', '?')
        words = {'deferred': 'waits', 'dry-run': 'ran as a dry run', 'ran': 'ran',
                 'failed': 'FAILED'}.get(outcome, outcome)
        return f'{body["action"]} scheduled: it {words} ({decision.get("reason", "")}).'
    if subject == 'unschedule':
        if answer.get('was_pending'):
            return f'{body["action"]} is no longer scheduled.'
        return f'{body["action"]} was not scheduled.'
    if subject == 'robot_idle':
        pending = ', '.join(answer.get('pending') or []) or 'nothing'
        state = 'idle' if answer.get('idle') else 'busy'
        return f'The robot is now reported {state}; pending maintenance: {pending}.'
    state = (answer.get('state') or {}).get('state', '?')
    done = {'start': 'started', 'stop': 'stopped', 'restart': 'restarted'}[
        subject.split('_')[0]]
    return f'Head {body["head"]} {done}; it is now {state}.'
