"""The mobile console in a real service, opened in a real headless Chromium the size of a phone.

The code comes from the service's ``pair`` request over its Unix socket, as the touchscreen
asks for it; the browser opens the URL, pairs, shows the status live and runs admin actions;
plain HTTP requests check what a browser would not show (status codes, cookie flags, CSRF).
``POLYCEPHALY_UPDATE_SCREENSHOTS=1`` copies the screenshots to docs/ for the README.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import time

from browser import chromium, http, keep_screenshot, ocr, text_of, wait_for
from robot_support import RawClient, procs, socket_of, write_config  # noqa: F401 (fixture)


def click(driver, element_id: str) -> None:
    driver.find_element('id', element_id).click()


def test_a_phone_pairs_sees_live_status_runs_actions_until_revoked(tmp_path, procs):
    config = write_config(tmp_path, service={'console': {'status_period': 0.25,
                                                         'code_attempts': 4}})
    service = procs.service(config)
    client = RawClient(socket_of(config))
    driver = chromium(tmp_path / 'profile')
    try:
        pair = client.ask('pair')
        assert pair['subject'] == 'reply', pair
        code = pair['body']['code']
        assert set(pair['body']) == {'url', 'code', 'expires', 'ttl'}
        assert pair['body']['ttl'] == 300 and pair['body']['expires'] > time.time() + 290
        outside = client.ask('pair', recipient='console')  # only through the main head
        assert outside['subject'] == 'error' and 'nothing from outside' in outside['body']['error']
        base, _, query = pair['body']['url'].partition('/pair?')
        assert base.startswith('http://127.0.0.1:') and query == f'code={code}'

        # Unpaired: the pages are there, the data is not; a GET never pairs.
        assert http('GET', base + '/api/status')[0] == 401
        status, headers, page = http('GET', pair['body']['url'])
        assert status == 200 and 'Pair this phone' in page
        assert "default-src 'none'" in headers['content-security-policy']
        assert headers['referrer-policy'] == 'no-referrer'

        driver.get(pair['body']['url'])
        wait_for(driver, lambda d: d.find_element('id', 'code').get_attribute('value') == code,
                 'the code from the URL in the form')
        assert driver.current_url == base + '/pair'  # (the code left the address bar)
        name = driver.find_element('id', 'name')
        name.clear()
        name.send_keys('Test phone')
        shot = tmp_path / 'console-pair.png'
        driver.save_screenshot(str(shot))
        assert 'Pair this phone' in ocr(shot)
        keep_screenshot(shot, 'console-pair.png')

        click(driver, 'pair')
        wait_for(driver, lambda d: text_of(d, 'pid') == str(service.pid),
                 'the console with the service\'s pid')
        assert text_of(driver, 'who').startswith('Paired as Test phone since')
        cookie = next(c for c in driver.get_cookies() if c['name'] == 'polycephaly_console')
        assert cookie['httpOnly'] is True and cookie['sameSite'] == 'Strict'
        assert cookie['secure'] is False  # (no TLS here: see the https test)

        # Live: the uptime changes with nobody touching the page (server-sent events).
        first = text_of(driver, 'uptime')
        wait_for(driver, lambda d: text_of(d, 'uptime') not in ('', '?', first),
                 'the uptime to change')
        wait_for(driver, lambda d: 'live' in text_of(d, 'live') and 'CPU' in text_of(d, 'health')
                 and 'dry run' in text_of(d, 'updates'), 'live status, diagnostics, updates')
        assert text_of(driver, 'link').startswith('up')

        # An admin action that needs a confirmation, and its result in plain words.
        click(driver, 'schedule-reboot')
        wait_for(driver, lambda d: d.find_element('id', 'confirm').is_displayed(),
                 'the confirmation')
        assert 'Schedule reboot' in text_of(driver, 'confirm-text')
        click(driver, 'confirm-yes')
        wait_for(driver, lambda d: text_of(d, 'result').startswith('reboot scheduled: it waits'),
                 'the result of scheduling reboot')
        assert client.ask('updates')['body']['pending'] == ['reboot']
        wait_for(driver, lambda d: 'scheduled: reboot' in text_of(d, 'updates'),
                 'the status to show it')
        shot = tmp_path / 'console-status.png'
        driver.save_screenshot(str(shot))
        seen = ocr(shot)
        assert 'Robot status' in seen and 'Paired' in seen and 'scheduled' in seen, seen
        keep_screenshot(shot, 'console-status.png')

        click(driver, 'stop-network')
        click(driver, 'confirm-yes')
        wait_for(driver, lambda d: text_of(d, 'result') == 'Head network stopped; it is now '
                 'stopped.', 'network stopped')
        wait_for(driver, lambda d: d.find_element('id', 'start-network').is_enabled()
                 and 'network: stopped' in text_of(d, 'heads'), 'the status to show it')
        click(driver, 'start-network')  # (no confirmation to start)
        wait_for(driver, lambda d: text_of(d, 'result') == 'Head network started; it is now '
                 'running.', 'network started')
        click(driver, 'idle')
        wait_for(driver, lambda d: text_of(d, 'result').startswith(
            'The robot is now reported idle'), 'idle reported')

        # The API behind the page: CSRF, what is never forwarded.
        token = cookie['value']
        action = {'subject': 'stop_head', 'body': {'head': 'updates'}}
        status, _, answer = http('POST', base + '/api/action', action, cookie=token, csrf=False)
        assert status == 403 and 'X-Polycephaly-Console' in answer['error']
        for bad in ({'subject': 'polycephaly.ebrake', 'body': {}},
                    {'subject': 'stop_head', 'body': {'head': 'console'}}):
            assert http('POST', base + '/api/action', bad, cookie=token)[0] == 400
        assert http('POST', base + '/api/action', {'subject': 'x' * 5000}, cookie=token)[0] == 413
        heads = {h['name']: h['state'] for h in client.ask('heads')['body']['heads']}
        assert heads['updates'] == 'running'  # (the refused stop_head was not sent)

        # A used code is refused, in the page and the API.
        driver.get(pair['body']['url'])
        click(driver, 'pair')
        wait_for(driver, lambda d: 'already used' in text_of(d, 'message'), 'used code refused')
        status, _, answer = http('POST', base + '/api/pair', {'code': code, 'name': 'again'})
        assert status == 403 and 'already used' in answer['error']

        # Wrong codes: 403 with the tries left, then 429 (this address: 4 a minute).
        statuses = []
        while not statuses or statuses[-1][0] == 403:
            statuses.append(http('POST', base + '/api/pair', {'code': 'AAAA-AAAA'}))
            assert len(statuses) <= 4
        status, headers, answer = statuses[-1]
        assert status == 429 and answer['error'].startswith('too many attempts, wait ')
        assert 1 <= int(headers['retry-after']) <= 60
        assert 'wrong code' in statuses[0][2]['error']

        # Revoked: the open page says so at once, and the token is refused from then on.
        devices = client.ask('devices')['body']['devices']
        assert [(d['name'], set(d)) for d in devices] == [
            ('Test phone', {'id', 'name', 'paired', 'last_seen'})]
        driver.get(base + '/')
        wait_for(driver, lambda d: text_of(d, 'pid') == str(service.pid), 'the console again')
        assert client.ask('revoke_device', {'id': devices[0]['id']})['body'] == {
            'revoked': devices[0]['id']}
        wait_for(driver, lambda d: 'revoked on the robot' in text_of(d, 'unpaired-why'),
                 'the page to say it was revoked')
        assert not driver.find_element('id', 'console').is_displayed()
        status, _, answer = http('GET', base + '/api/status', cookie=token)
        assert status == 401 and 'revoked' in answer['error']
        assert http('GET', base + '/api/events', cookie=token)[0] == 401
        assert client.ask('devices')['body'] == {'devices': []}
        unknown = client.ask('revoke_device', {'id': devices[0]['id']})
        assert unknown['subject'] == 'error' and 'no paired device' in unknown['body']['error']
    finally:
        driver.quit()
        client.close()
    assert service.stop() == 0


def test_https_with_a_self_signed_certificate_and_an_expired_code(tmp_path, procs):
    config = write_config(tmp_path, service={'console': {'tls': 'self_signed',
                                                         'code_ttl': 1.5}})
    service = procs.service(config)
    client = RawClient(socket_of(config))
    driver = chromium(tmp_path / 'profile', ignore_certificate_errors=True)
    try:
        pair = client.ask('pair')['body']
        base = pair['url'].partition('/pair?')[0]
        assert base.startswith('https://127.0.0.1:')
        state = tmp_path / 'state'
        key = state / 'console-key.pem'
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        trust = ssl.create_default_context(cafile=str(state / 'console-cert.pem'))
        status, headers, answer = http('POST', base + '/api/pair',
                                       {'code': pair['code'], 'name': 'tls'}, context=trust)
        assert status == 200 and answer['device']['name'] == 'tls'
        assert '; Secure' in headers['set-cookie'] and 'HttpOnly' in headers['set-cookie']
        assert http('GET', base + '/', context=trust)[0] == 200

        # The browser over https: the page loads, the code expires before the phone pairs.
        pair = client.ask('pair')['body']
        driver.get(pair['url'])
        wait_for(driver, lambda d: d.find_element('id', 'code').get_attribute('value')
                 == pair['code'], 'the pairing page over https')
        time.sleep(max(0.0, pair['expires'] - time.time()) + 0.05)  # (time itself: no event)
        click(driver, 'pair')
        wait_for(driver, lambda d: 'expired' in text_of(d, 'message'), 'expired code refused')
        status, _, answer = http('POST', base + '/api/pair', {'code': pair['code']},
                                 context=trust)
        assert status == 403 and 'expired' in answer['error']
        assert [d['name'] for d in client.ask('devices')['body']['devices']] == ['tls']
    finally:
        driver.quit()
        client.close()
    assert service.stop() == 0
    # Made once: a restart keeps the certificate (the phone's exception stays valid).
    before = (state / 'console-cert.pem').read_bytes()
    service = procs.service(config)
    client = RawClient(socket_of(config))
    try:
        assert client.ask('pair')['subject'] == 'reply'
    finally:
        client.close()
    assert (state / 'console-cert.pem').read_bytes() == before
    assert service.stop() == 0


def test_without_the_console_pairing_is_refused_in_words(tmp_path, procs):
    (tmp_path / 'off').mkdir()
    (tmp_path / 'busy').mkdir()
    config = write_config(tmp_path / 'off', service={'console': {'enabled': False}})
    service = procs.service(config)
    client = RawClient(socket_of(config))
    try:
        off = client.ask('pair')
        assert off['subject'] == 'error' and 'console is off' in off['body']['error']
        assert 'console' not in {h['name'] for h in client.ask('heads')['body']['heads']}
    finally:
        client.close()
    assert service.stop() == 0

    with socket.socket() as taken:  # a port someone else listens on
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        config = write_config(tmp_path / 'busy',
                              service={'console': {'port': taken.getsockname()[1]}})
        service = procs.service(config)
        client = RawClient(socket_of(config))
        try:  # (the console was born, not serving, before the socket took requests)
            busy = client.ask('pair')
            assert busy['subject'] == 'error'
            assert busy['body']['error'].startswith('the mobile console is not serving: OSError')
            assert 'address already in use' in busy['body']['error']
            assert client.ask('devices')['body'] == {'devices': []}  # (the store is there)
            status = client.ask('status')['body']  # the rest goes on, the console head too
            assert {h['name']: h['state'] for h in status['heads']}['console'] == 'running'
        finally:
            client.close()
        assert service.stop() == 0
