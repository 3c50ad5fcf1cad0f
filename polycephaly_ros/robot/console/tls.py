"""TLS for the mobile console: the server's SSL context, and a self-signed certificate made once.

``service.console.tls``: ``none`` (plain HTTP), ``files`` (``cert_file`` and ``key_file``,
e.g. from the site's CA) or ``self_signed``: :func:`self_signed` makes ``console-cert.pem`` and
``console-key.pem`` in the console's state directory with the ``openssl`` command, once (an
EC P-256 key, readable only by this user; ten years; the names the console is reached by as
subject alternative names), and reuses them afterwards. A phone then warns once about the
unknown certificate; its fingerprint is logged so it can be compared.

Threading: call from one thread at a time per state directory (the console's head's birth()).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess

from ...errors import ConfigurationError
from .pairing import check_private

CERT_FILE = 'console-cert.pem'
KEY_FILE = 'console-key.pem'


def _alt_names(host: str) -> list[str]:
    """Return the subjectAltName entries for a console listening on host."""
    names = ['DNS:localhost', 'IP:127.0.0.1', f'DNS:{socket.gethostname()}']
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host:
            names.append(f'DNS:{host}')
    else:
        names.append(f'IP:{own_address(host == "::") if host in ("0.0.0.0", "::") else host}')
    return list(dict.fromkeys(names))


def own_address(v6: bool = False) -> str:
    """Return this machine's address on its default route (no packet is sent)."""
    family, target = (socket.AF_INET6, '2001:db8::1') if v6 else (socket.AF_INET, '192.0.2.1')
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((target, 9))
            return probe.getsockname()[0]
        except OSError:
            return '::1' if v6 else '127.0.0.1'


def self_signed(state_dir: str, host: str) -> tuple[str, str]:
    """Return (certificate, key) paths in state_dir, made with openssl if missing."""
    cert = os.path.join(state_dir, CERT_FILE)
    key = os.path.join(state_dir, KEY_FILE)
    if os.path.lexists(cert) and os.path.lexists(key):
        check_private(key, directory=False)
        return cert, key
    openssl = shutil.which('openssl')
    if openssl is None:
        raise ConfigurationError('service.console.tls self_signed needs the openssl command '
                                 '(apt-get install openssl)')
    temporary = (cert + '.new', key + '.new')
    for path in temporary:
        if os.path.lexists(path):
            os.unlink(path)
    command = [openssl, 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
               'ec_paramgen_curve:prime256v1', '-sha256', '-days', '3650', '-nodes',
               '-subj', '/CN=polycephaly robot console',
               '-addext', 'subjectAltName=' + ','.join(_alt_names(host)),
               '-addext', 'basicConstraints=critical,CA:TRUE',
               '-keyout', temporary[1], '-out', temporary[0]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, umask=0o077,
                          check=False)
    if done.returncode != 0:
        raise ConfigurationError(f'openssl could not make the console\'s certificate: '
                                 f'{done.stderr.strip()[-500:]}')
    os.replace(temporary[1], key)
    os.replace(temporary[0], cert)
    return cert, key


def server_context(settings: dict, state_dir: str) -> ssl.SSLContext | None:
    """Return the console's server SSL context for its settings, or None for tls none."""
    mode = settings['tls']
    if mode == 'none':
        return None
    if mode == 'files':
        cert, key = settings['cert_file'], settings['key_file']
        if not cert or not key:
            raise ConfigurationError('service.console.tls files needs cert_file and key_file')
        cert, key = os.path.expanduser(cert), os.path.expanduser(key)
    else:
        cert, key = self_signed(state_dir, settings['host'])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f'the console cannot use {cert} and {key}: {exc}') from None
    return context


def fingerprint(cert: str) -> str:
    """Return the SHA-256 fingerprint of a PEM certificate, as browsers show it."""
    with open(cert, encoding='ascii') as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))
