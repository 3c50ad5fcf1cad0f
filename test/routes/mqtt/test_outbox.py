"""The MQTT route's outbox on its own: bounded, kept in a private SQLite file across restarts.

No broker and no application: the outbox is what stands between a head's send() and paho, so
what it promises (a clear QueueFull, nothing lost across close and reopen, a file nobody else
can read or plant) is checked directly.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

import pytest

from polycephaly_ros.errors import QueueFull
from polycephaly_ros.routes.mqtt import Outbox
from polycephaly_ros.routes.mqtt.outbox import Record

pytestmark = pytest.mark.fast


def record(i: int, **fields: object) -> Record:
    """Return a distinct record number i."""
    return Record(f'polycephaly/bot/out/r{i}', f'{{"n":{i}}}'.encode(), **fields)


@pytest.mark.parametrize('on_disk', [False, True], ids=['memory', 'file'])
def test_a_full_outbox_raises_queue_full_saying_how_full(tmp_path: Path, on_disk: bool) -> None:
    outbox = Outbox(2, tmp_path / 'outbox.db' if on_disk else None)
    first, _ = outbox.add(record(1)), outbox.add(record(2))
    with pytest.raises(QueueFull) as raised:
        outbox.add(record(3))
    message = str(raised.value)
    assert 'outbox is full' in message and '2 envelopes wait for the broker' in message
    assert 'capacity 2' in message
    assert len(outbox) == 2
    outbox.done(first)  # the broker acknowledged one: there is room again
    outbox.add(record(3))
    assert len(outbox) == 2
    outbox.close()


def test_an_outbox_holds_at_least_one_record() -> None:
    with pytest.raises(ValueError, match='at least 1 record'):
        Outbox(0)


def test_an_outbox_in_memory_hands_nothing_back() -> None:
    outbox = Outbox(5)
    keys = [outbox.add(record(i)) for i in range(3)]
    assert len(set(keys)) == 3 and len(outbox) == 3
    assert outbox.pending() == []  # (paho itself holds what is in flight)
    for key in keys:
        outbox.done(key)
    assert len(outbox) == 0


def test_the_file_keeps_unacknowledged_records_across_close_and_reopen_in_order(
        tmp_path: Path) -> None:
    path = tmp_path / 'outbox.db'
    outbox = Outbox(10, path)
    records = [record(1), record(2, retain=True),
               record(3, response_topic='polycephaly/bot/touch/inbox', correlation=b'\x00c\xff'),
               record(4), record(5)]
    keys = [outbox.add(r) for r in records]
    outbox.done(keys[1])  # acknowledged: gone
    outbox.done(keys[3])
    outbox.close()

    again = Outbox(10, path)
    assert len(again) == 3
    pending = again.pending()
    assert [r for _, r in pending] == [records[0], records[2], records[4]]  # oldest first
    assert [k for k, _ in pending] == [keys[0], keys[2], keys[4]]
    kept = pending[1][1]
    assert type(kept.payload) is bytes and kept.correlation == b'\x00c\xff'
    assert pending[0][1].retain is False and kept.response_topic == 'polycephaly/bot/touch/inbox'
    later = again.add(record(6))  # new records go after the old ones
    assert later > keys[4]
    again.close()

    third = Outbox(10, path)
    assert [r for _, r in third.pending()] == [records[0], records[2], records[4], record(6)]
    third.close()


def test_done_removes_a_record_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / 'outbox.db'
    outbox = Outbox(10, path)
    keys = [outbox.add(record(i)) for i in range(3)]
    for key in keys:
        outbox.done(key)
    assert len(outbox) == 0 and outbox.pending() == []
    outbox.close()
    again = Outbox(10, path)
    assert len(again) == 0 and again.pending() == []
    again.close()


def test_what_the_last_run_left_counts_against_the_capacity(tmp_path: Path) -> None:
    path = tmp_path / 'outbox.db'
    outbox = Outbox(2, path)
    outbox.add(record(1))
    outbox.add(record(2))
    outbox.close()
    again = Outbox(2, path)
    with pytest.raises(QueueFull, match='2 envelopes wait'):
        again.add(record(3))
    again.close()


def test_the_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / 'outbox.db'
    old = os.umask(0)  # even with a permissive umask
    try:
        outbox = Outbox(10, path)
        outbox.add(record(1, correlation=b'secret'))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        outbox.close()
    finally:
        os.umask(old)
    assert modes['outbox.db'] == 0o600
    # SQLite's write-ahead log (and its index) hold the same records: as private as the file
    assert 'outbox.db-wal' in modes
    assert {name: oct(mode) for name, mode in modes.items() if mode != 0o600} == {}


def test_a_symlink_at_the_path_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / 'elsewhere'
    target.write_bytes(b'not yours to overwrite')
    link = tmp_path / 'outbox.db'
    link.symlink_to(target)
    with pytest.raises(OSError) as raised:
        Outbox(10, link)
    assert raised.value.errno == errno.ELOOP
    assert target.read_bytes() == b'not yours to overwrite'
    dangling = tmp_path / 'dangling.db'
    dangling.symlink_to(tmp_path / 'would-be-created')
    with pytest.raises(OSError):
        Outbox(10, dangling)
    assert not (tmp_path / 'would-be-created').exists()


def test_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip('chown to another user needs root (the tests run as root)')
    nobody = pwd.getpwnam('nobody').pw_uid
    path = tmp_path / 'outbox.db'
    planted = Outbox(10, path)  # a valid outbox file, with a record planted in it
    planted.add(record(1))
    planted.close()
    for name in os.listdir(tmp_path):
        os.chown(tmp_path / name, nobody, -1)
    with pytest.raises(PermissionError) as raised:
        Outbox(10, path)
    assert f'belongs to uid {nobody}' in str(raised.value) and str(path) in str(raised.value)
