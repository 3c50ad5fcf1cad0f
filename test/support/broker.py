"""A real mosquitto broker for the MQTT tests and benches, started on loopback by the caller.

:class:`Broker` writes a mosquitto.conf of its own in a folder (listeners on 127.0.0.1 only,
free ports, persistence in that folder), starts Debian's ``/usr/sbin/mosquitto`` with it and
can stop (SIGTERM: it saves what it holds; SIGKILL: it does not) and start it again on the
same ports. With ``tls=True`` a second listener speaks TLS with a certificate from a CA made
here with openssl (``broker.ca_file``), and with ``client_certs=True`` it takes only clients
showing a certificate of that CA (:func:`make_client_cert`); with ``users={'name': 'password'}`` anonymous
clients are refused and those users get in (a password file made with mosquitto_passwd).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which('mosquitto') or '/usr/sbin/mosquitto'


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """Make a CA and a server certificate for 127.0.0.1 in folder: (ca, cert, key) files."""
    def openssl(*args: str) -> None:
        subprocess.run(['openssl', *args], cwd=folder, check=True, capture_output=True,
                       timeout=60)
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    openssl('req', '-x509', *ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
            '-subj', '/CN=polycephaly test CA')
    openssl('req', *ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
    (folder / 'san.ext').write_text('subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
            '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext')
    return folder / 'ca.crt', folder / 'server.crt', folder / 'server.key'


def make_client_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """Make a client certificate signed by the CA make_ca() left in folder: (cert, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(['openssl', *args], cwd=folder, check=True, capture_output=True,
                       timeout=60)
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
            '-keyout', f'{name}.key', '-out', f'{name}.csr', '-subj', f'/CN={name}')
    openssl('x509', '-req', '-in', f'{name}.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
            '-CAcreateserial', '-out', f'{name}.crt', '-days', '2')
    return folder / f'{name}.crt', folder / f'{name}.key'


class Broker:
    """One mosquitto on 127.0.0.1, configured and run from folder."""

    def __init__(self, folder: Path, *, tls: bool = False, client_certs: bool = False,
                 users: dict[str, str] | None = None) -> None:
        if not os.access(MOSQUITTO, os.X_OK):
            raise RuntimeError('mosquitto is not installed: ./dev setup installs it')
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ca_file: Path | None = None
        lines = ['per_listener_settings false', 'persistence true',
                 f'persistence_location {self.folder}/', 'log_dest stderr',
                 'log_type error', 'log_type warning', 'max_queued_messages 100000',
                 'set_tcp_nodelay true',  # (else small packets wait ~40 ms for Nagle)
                 f'user {pwd.getpwuid(os.getuid()).pw_name}']
        if users:
            passwords = self.folder / 'passwords'
            passwords.touch(0o600)
            for name, password in users.items():
                subprocess.run(['mosquitto_passwd', '-b', str(passwords), name, password],
                               check=True, capture_output=True, timeout=30)
            lines += ['allow_anonymous false', f'password_file {passwords}']
        else:
            lines += ['allow_anonymous true']
        lines += [f'listener {self.port} 127.0.0.1']
        if tls:
            self.ca_file, cert, key = make_ca(self.folder)
            lines += [f'listener {self.tls_port} 127.0.0.1', f'cafile {self.ca_file}',
                      f'certfile {cert}', f'keyfile {key}']
            if client_certs:
                lines += ['require_certificate true']
        self.config = self.folder / 'mosquitto.conf'
        self.config.write_text('\n'.join(lines) + '\n')
        self.log = self.folder / 'mosquitto.log'
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> Broker:
        """Start mosquitto and return once it takes connections."""
        assert self.process is None, 'the broker runs already'
        with open(self.log, 'ab') as log:
            self.process = subprocess.Popen([MOSQUITTO, '-c', str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f'mosquitto did not start:\n{self.log.read_text()}')
                time.sleep(0.02)  # (polling a port: mosquitto tells nobody when it listens)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop mosquitto with sig (SIGTERM saves its messages to disk; SIGKILL loses them)."""
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Stop mosquitto (SIGTERM) and start it again on the same ports."""
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        """Start the broker."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the broker."""
        self.stop()
