"""A real headless Chromium the size of a phone, driven by Selenium, and a plain HTTP client.

Debian's chromium through Debian's chromedriver (never Selenium Manager: nothing is downloaded
at run time), a profile of the test's own, a 390 x 844 mobile viewport. Screenshots are read
back with the ``tesseract`` command, so a test checks what they show, not just that they exist.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
WAIT = 15.0  # s a page gets to show what a test waits for


def chromium(profile: Path, ignore_certificate_errors: bool = False) -> Any:
    """Return a Selenium driver of a headless Chromium with a phone's viewport."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip(f'{path} is not installed (./dev setup installs chromium and '
                        'chromium-driver)')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', f'--user-data-dir={profile}',
                '--window-size=390,844'):
        options.add_argument(arg)
    if ignore_certificate_errors:
        options.add_argument('--ignore-certificate-errors')
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # A phone's viewport (headless windows are at least 500 wide), at twice the pixels.
    driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
        'width': 390, 'height': 844, 'deviceScaleFactor': 2, 'mobile': True})
    return driver


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str,
             timeout: float = WAIT) -> Any:
    """Return condition(driver) once truthy (polled: a page offers no event to wait on)."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    except Exception as exc:  # noqa: BLE001 - say what was waited for, and what the page shows
        body = driver.execute_script('return document.body ? document.body.innerText : ""')
        raise AssertionError(f'{what}: not within {timeout} s ({type(exc).__name__}); the page '
                             f'shows:\n{body}') from None


def text_of(driver: Any, element_id: str) -> str:
    """Return the visible text of the element with that id ('' when there is none)."""
    return driver.execute_script(
        'const e = document.getElementById(arguments[0]); return e ? e.innerText : "";',
        element_id)


def ocr(png: Path) -> str:
    """Return the text tesseract reads in a screenshot."""
    tesseract = shutil.which('tesseract')
    if tesseract is None:
        pytest.skip('tesseract is not installed (./dev setup installs tesseract-ocr)')
    done = subprocess.run([tesseract, str(png), 'stdout'], capture_output=True, text=True,
                          timeout=60, check=True)
    return ' '.join(done.stdout.split())


def keep_screenshot(png: Path, name: str) -> None:
    """Copy a screenshot to docs/<name> when POLYCEPHALY_UPDATE_SCREENSHOTS=1 (README's)."""
    if os.environ.get('POLYCEPHALY_UPDATE_SCREENSHOTS') == '1':
        docs = Path(__file__).resolve().parents[2] / 'docs'
        docs.mkdir(exist_ok=True)
        shutil.copyfile(png, docs / name)


def http(method: str, url: str, body: Any = None, *, cookie: str | None = None,
         csrf: bool = True, context: ssl.SSLContext | None = None,
         timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
    """Return (status, headers, JSON or text) of one request; error statuses are returned."""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers['Content-Type'] = 'application/json'
    if csrf:
        headers['X-Polycephaly-Console'] = '1'
    if cookie:
        headers['Cookie'] = f'polycephaly_console={cookie}'
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        raw = response.read().decode()
        kind = response.headers.get('Content-Type', '')
        return (response.status, {k.lower(): v for k, v in response.headers.items()},
                json.loads(raw) if kind.startswith('application/json') else raw)
