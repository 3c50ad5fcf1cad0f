"""A Unix-socket client made of a plain socket, as a user would write by hand."""

from __future__ import annotations

import os
import selectors
import shutil
import itertools
import socket
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest


_NAMES = itertools.count(1)


class RawClient:
    """Newline-delimited JSON envelopes over a plain blocking socket."""

    def __init__(self, path: str | Path, timeout: float = 10.0,
                 sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(path))
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b''
        self.name = f'cli{next(_NAMES)}'  # the sender of its frames unless one is given

    def send_line(self, data: bytes) -> None:
        """Send bytes followed by a newline."""
        self.sock.sendall(data + b'\n')

    def send(self, **headers: Any) -> None:
        """Send one envelope made of the given headers (sender: its own name unless given)."""
        self.send_line(orjson.dumps({'sender': self.name, **headers}))

    def recv(self) -> dict[str, Any]:
        """Return the next frame from the server (fails after the timeout)."""
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, 'the server closed the connection'
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return orjson.loads(line)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def first_frames(clients: list[RawClient], timeout: float = 10.0) -> dict[int, dict[str, Any]]:
    """Return the first frame each client receives, by its index, reading all clients at once."""
    frames: dict[int, dict[str, Any]] = {}
    with selectors.DefaultSelector() as sel:
        for n, client in enumerate(clients):
            client.sock.setblocking(False)
            sel.register(client.sock, selectors.EVENT_READ, (n, client))
        while len(frames) < len(clients):
            ready = sel.select(timeout=timeout)
            assert ready, f'only {len(frames)} of {len(clients)} clients got a frame'
            for key, _ in ready:
                n, client = key.data
                chunk = client.sock.recv(65536)
                assert chunk, f'client {n} was disconnected'
                client.buf += chunk
                if b'\n' in client.buf:
                    frames[n] = orjson.loads(client.buf.split(b'\n', 1)[0])
                    sel.unregister(client.sock)
    return frames


def socat_exchange(path: str | Path, line: bytes, timeout: float = 10.0) -> dict[str, Any]:
    """Send one JSON line through Debian's socat and return the first frame it prints back."""
    socat = shutil.which('socat')
    if socat is None:
        pytest.skip('socat is not installed (./dev setup installs it; or apt-get install socat)')
    proc = subprocess.Popen([socat, '-', f'UNIX-CONNECT:{path}'], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        proc.stdin.write(line + b'\n')
        data = b''
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b'\n' not in data:
                assert sel.select(timeout=timeout), 'no reply through socat'
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, proc.stderr.read().decode()
                data += chunk
        proc.stdin.close()
        assert proc.wait(timeout=timeout) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return orjson.loads(data.split(b'\n', 1)[0])
