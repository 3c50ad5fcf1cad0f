"""The wire between heads: frames, inbox sockets, writes within a deadline."""

from __future__ import annotations

import os
import pickle
import socket
import stat
from pathlib import Path

import pytest

from polycephaly_ros import RecipientUnavailable
from polycephaly_ros import wire

pytestmark = pytest.mark.fast


def test_a_frame_is_its_length_its_flags_then_the_pickle():
    payload = pickle.dumps({'n': 1})
    frame = wire.frame(payload, wire.COUNTED)
    assert wire.HEADER.unpack(frame[:5]) == (len(payload), wire.COUNTED)
    assert pickle.loads(frame[5:]) == {'n': 1}


def test_listen_makes_a_socket_only_its_user_can_use(tmp_path: Path):
    path = os.fspath(tmp_path / 'head.sock')
    (tmp_path / 'head.sock').write_text('stale')
    sock = wire.listen(path)
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    finally:
        sock.close()


def test_connect_to_a_missing_inbox_names_the_head(tmp_path: Path):
    with pytest.raises(RecipientUnavailable, match="inbox of head 'echo'"):
        wire.connect(os.fspath(tmp_path / 'missing.sock'), 'echo')


def test_send_within_gives_up_when_the_reader_takes_nothing():
    writer, reader = socket.socketpair()
    try:
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with pytest.raises(TimeoutError):
            wire.send_within(writer, b'x' * (8 << 20), 0.2)  # far more than the buffers hold
    finally:
        writer.close()
        reader.close()


def test_send_within_writes_everything_a_reader_takes():
    writer, reader = socket.socketpair()
    try:
        wire.send_within(writer, b'hello', 1.0)
        assert reader.recv(16) == b'hello'
    finally:
        writer.close()
        reader.close()
