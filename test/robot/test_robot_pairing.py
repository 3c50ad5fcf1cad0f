"""The pairing store (robot/console/pairing.py): one-time codes, hashed tokens, files, limits, revocation.

A clock of the test's own stands in for time, so expiry and the one-minute window are tested
without waiting. The console's edge checks (robot/console/actions.py) are pure and tested here
too; the store and the console in a real service and browser: test_robot_console.py.
"""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from polycephaly_ros.errors import ConfigurationError
from polycephaly_ros.robot.console import actions as console_actions
from polycephaly_ros.robot.console import console_url
from polycephaly_ros.robot.console.pairing import (ALPHABET, CodeRefused, NotPaired, PairingStore,
                                           TooManyAttempts, UnknownDevice, default_state_dir,
                                           hash_token)

pytestmark = pytest.mark.fast


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def store_in(path, clock, **kw) -> PairingStore:
    return PairingStore(str(path), clock=clock, **{'code_ttl': 300.0, 'attempts': 5, **kw})


def test_a_code_is_short_unambiguous_and_works_once(tmp_path, clock):
    store = store_in(tmp_path / 'state', clock)
    code = store.new_code()
    assert re.fullmatch(f'[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}', code['code'])
    assert not set('01OIL') & set(code['code'])
    assert code['expires'] == clock.now + 300 and code['ttl'] == 300
    typed = code['code'].lower().replace('-', ' ')  # as a person may type it
    device, token = store.pair(typed, 'Pixel\n<b>7</b>\x00', '10.0.0.2')
    assert device['name'] == 'Pixel <b>7</b>' and len(device['id']) == 12
    assert store.check(token)['id'] == device['id']
    with pytest.raises(CodeRefused, match='already used'):
        store.pair(code['code'], 'again', '10.0.0.2')


def test_codes_expire_and_a_new_one_replaces_the_unused_one(tmp_path, clock):
    store = store_in(tmp_path / 'state', clock, code_ttl=10.0)
    first = store.new_code()['code']
    second = store.new_code()['code']
    with pytest.raises(CodeRefused, match='replaced by a newer one'):
        store.pair(first, 'phone', 'a')
    clock.now += 10.0
    with pytest.raises(CodeRefused, match='expired'):
        store.pair(second, 'phone', 'a')
    with pytest.raises(CodeRefused, match='expired'):  # and stays refused
        store.pair(second, 'phone', 'a')
    third = store.new_code()['code']
    clock.now += 9.9
    assert store.pair(third, 'phone', 'a')[0]['name'] == 'phone'


def test_wrong_codes_are_limited_per_client_and_minute(tmp_path, clock):
    store = store_in(tmp_path / 'state', clock, attempts=3)
    code = store.new_code()['code']
    for left in (2, 1, 0):
        with pytest.raises(CodeRefused, match=f'wrong code.*{left} tr'):
            store.pair('AAAA-AAAA', 'x', 'mallory')
        clock.now += 10
    with pytest.raises(TooManyAttempts, match='too many attempts, wait 30 s') as refused:
        store.pair(code, 'x', 'mallory')  # even the right code: locked out
    assert refused.value.wait == 30
    assert store.pair(code, 'x', 'alice')[0]['name'] == 'x'  # another client is not
    clock.now += 30  # the first wrong one left the minute: one more try
    with pytest.raises(CodeRefused, match='already used'):
        store.pair(code, 'x', 'mallory')
    with pytest.raises(TooManyAttempts):
        store.pair(code, 'x', 'mallory')


def test_tokens_are_stored_hashed_in_private_files_and_survive_a_restart(tmp_path, clock):
    state = tmp_path / 'a' / 'state'
    store = store_in(state, clock)
    device, token = store.pair(store.new_code()['code'], 'tablet', 'c')
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state.parent).st_mode) == 0o700
    path = state / 'devices.json'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert token not in text and hash_token(token) in text
    saved = json.loads(text)['devices'][0]
    assert saved['token_sha256'] == hash_token(token) and saved['name'] == 'tablet'
    assert os.listdir(state) == ['devices.json']  # (no temporary file left)

    clock.now += 120
    store.check(token)  # last_seen saved at most once a minute: now, then on close()
    clock.now += 1
    store.check(token)
    store.close()
    again = store_in(state, clock)
    assert again.check(token)['id'] == device['id']
    assert again.devices() == [dict(device, last_seen=clock.now)]
    with pytest.raises(NotPaired, match='not paired'):
        again.check('x' * 43)
    for bad in (None, '', 'y' * 500, 42):
        with pytest.raises(NotPaired):
            again.check(bad)


def test_revocation_refuses_the_token_and_says_so(tmp_path, clock):
    store = store_in(tmp_path / 'state', clock)
    keep, keep_token = store.pair(store.new_code()['code'], 'keep', 'c')
    gone, gone_token = store.pair(store.new_code()['code'], 'gone', 'c')
    assert [d['name'] for d in store.devices()] == ['keep', 'gone']
    assert store.revoke(gone['id'])['name'] == 'gone'
    with pytest.raises(NotPaired, match='revoked on the robot'):
        store.check(gone_token)
    with pytest.raises(UnknownDevice, match='no paired device'):
        store.revoke(gone['id'])
    assert store.check(keep_token)['id'] == keep['id']
    reopened = store_in(tmp_path / 'state', clock)  # revocation is kept in the file
    with pytest.raises(NotPaired, match='revoked'):
        reopened.check(gone_token)
    assert [d['id'] for d in reopened.devices()] == [keep['id']]


def test_a_symbolic_link_or_a_loose_mode_is_refused(tmp_path, clock):
    real = tmp_path / 'real'
    real.mkdir(mode=0o700)
    (tmp_path / 'link').symlink_to(real)
    with pytest.raises(ConfigurationError, match='symbolic link'):
        store_in(tmp_path / 'link', clock)

    loose = tmp_path / 'loose'
    loose.mkdir()
    loose.chmod(0o755)
    with pytest.raises(ConfigurationError, match='others may use .* make it 0700'):
        store_in(loose, clock)

    state = tmp_path / 'state'
    state.mkdir(mode=0o700)
    elsewhere = tmp_path / 'elsewhere.json'
    elsewhere.write_text('{"devices": []}')
    (state / 'devices.json').symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match='symbolic link is refused'):
        store_in(state, clock)
    (state / 'devices.json').unlink()
    (state / 'devices.json').write_text('{"devices": []}')
    (state / 'devices.json').chmod(0o644)
    with pytest.raises(ConfigurationError, match='make it 0600'):
        store_in(state, clock)
    (state / 'devices.json').chmod(0o600)
    (state / 'devices.json').write_text('[1, 2]')
    with pytest.raises(ConfigurationError, match='not a pairing file'):
        store_in(state, clock)


def test_default_state_dir_is_per_user_and_namespace(monkeypatch):
    monkeypatch.setenv('XDG_STATE_HOME', '/xdg/state')
    assert default_state_dir('/robot/arm') == '/xdg/state/polycephaly/robot.arm'
    monkeypatch.delenv('XDG_STATE_HOME')
    assert default_state_dir('') == os.path.expanduser('~/.local/state/polycephaly/root')


def test_console_url_uses_public_url_or_scheme_host_and_port():
    settings = {'public_url': '', 'tls': 'none', 'host': '127.0.0.1'}
    assert console_url(settings, 8765) == 'http://127.0.0.1:8765'
    assert console_url(dict(settings, tls='self_signed', host='::1'), 1) == 'https://[::1]:1'
    assert console_url(dict(settings, public_url='https://robot.example/c/'), 1) == \
        'https://robot.example/c'
    assert re.fullmatch(r'http://[\d.]+:2', console_url(dict(settings, host='0.0.0.0'), 2))


@pytest.mark.parametrize('payload, words', [
    ({'subject': 'polycephaly.ebrake', 'body': {}}, 'only schedule'),
    ({'subject': 'status'}, 'only schedule'),
    ({'subject': 'pair', 'body': {}}, 'only schedule'),
    ({'subject': 'schedule', 'body': {'action': 'Reboot; rm'}}, 'must be a name'),
    ({'subject': 'schedule', 'body': {'action': 'reboot', 'x': 1}}, 'nothing else'),
    ({'subject': 'robot_idle', 'body': {'idle': 'yes'}}, 'true or false'),
    ({'subject': 'stop_head', 'body': {'head': 'console'}}, 'its own head'),
    ({'subject': 'start_head', 'body': {'head': 'x' * 65}}, 'at most 64'),
    ({'subject': 'start_head', 'body': ['network']}, 'nothing else'),
    ({'subject': 'start_head', 'body': {'head': 'a'}, 'via': 'mqtt'}, 'nothing else'),
    (['schedule'], 'nothing else'),
])
def test_the_console_forwards_only_checked_actions(payload, words):
    with pytest.raises(console_actions.BadAction, match=words):
        console_actions.check_action(payload, 'console')


def test_the_console_describes_answers_in_plain_words():
    ok = console_actions.check_action({'subject': 'stop_head', 'body': {'head': 'network'}},
                                      'console')
    assert ok == ('stop_head', {'head': 'network'})
    assert console_actions.describe(*ok, 'reply', {'state': {'state': 'stopped'}}) == \
        'Head network stopped; it is now stopped.'
    assert console_actions.describe(*ok, 'error', {'error': 'no such head'}) == \
        'Refused: no such head'
    assert console_actions.describe('robot_idle', {'idle': True}, 'reply',
                                    {'idle': True, 'pending': ['reboot']}) == \
        'The robot is now reported idle; pending maintenance: reboot.'
