"""The wire between the heads of one application: framed pickles over Unix stream sockets.

Every head's inbox listens on a Unix socket in the application's private run directory (mode
0700; each socket 0600). A frame is a 5-byte header, ``!IB`` (payload length, flags), and the
pickled envelope. The one flag, :data:`COUNTED`, says that the sender took one of the
recipient's queue slots for it (control envelopes take none). Pickle is only ever read from
these sockets, which only the application's own user can reach; external routes speak JSON
(:mod:`polycephaly_ros.codec`).

:func:`send_within` is also what the Unix-socket route's client writes with: a whole frame
within a deadline, or an error that tells the caller to drop the connection.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time

from .errors import RecipientUnavailable

HEADER = struct.Struct('!IB')
#: Flag: the sender holds one of the recipient's queue slots for this envelope.
COUNTED = 1
#: Frames smaller than this are written as one buffer; larger ones as header and payload.
_COPY_BELOW = 1 << 16


def frame(payload: bytes, counted: int) -> bytes:
    """Return payload (a pickle) framed for an inbox socket."""
    return HEADER.pack(len(payload), counted) + payload


def send_frame(sock: socket.socket, payload: bytes, counted: int, timeout: float) -> None:
    """Write one frame within timeout seconds (see send_within); a large one is not copied."""
    if len(payload) < _COPY_BELOW:
        data = frame(payload, counted)
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            send_within(sock, memoryview(data)[sent:], timeout)
        return
    parts = (HEADER.pack(len(payload), counted), payload)
    try:
        sent = sock.sendmsg(parts, (), socket.MSG_DONTWAIT)
    except BlockingIOError:
        sent = 0
    deadline = time.monotonic() + timeout
    for part in parts:
        if sent >= len(part):
            sent -= len(part)
            continue
        send_within(sock, memoryview(part)[sent:], max(deadline - time.monotonic(), 0.0))
        sent = 0


def listen(path: str) -> socket.socket:
    """Create a head's listening inbox socket at path, readable by this user only."""
    if os.path.lexists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(socket.SOMAXCONN)
    return sock


def connect(path: str, name: str) -> socket.socket:
    """Return a non-blocking connection to head name's inbox socket at path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise RecipientUnavailable(f'cannot reach the inbox of head {name!r}: {exc}') from exc
    sock.setblocking(False)
    return sock


def send_within(sock: socket.socket, data: bytes | memoryview, timeout: float) -> None:
    """Write all of data to a stream socket (blocking or not) within timeout seconds.

    Raises TimeoutError when the reader did not take it all in time, or another OSError when
    the connection failed; the peer may then have received part of it, so the caller must
    drop the connection.
    """
    rest = memoryview(data)
    try:
        rest = rest[sock.send(rest, socket.MSG_DONTWAIT):]
    except BlockingIOError:
        pass
    if not rest:
        return
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_WRITE)
        while rest:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise TimeoutError('the reader did not take the frame in time')
            try:
                rest = rest[sock.send(rest, socket.MSG_DONTWAIT):]
            except BlockingIOError:
                pass
