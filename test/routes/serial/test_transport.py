"""The serial transport alone, over pseudo-terminals: error frames, bounds, holding, reopening.

No application here: a SerialTransport with a callback, and the device's end written by hand
(serial_link.Peer, with the simulator's own framing code).
"""

from __future__ import annotations

import os
import termios
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import serial

from polycephaly_ros.errors import ConfigurationError, QueueFull, RecipientUnavailable, \
    UnknownRecipient
from polycephaly_ros.loop import Loop
from polycephaly_ros.routes.serial import Port, SerialTransport
from serial_device import cobs_encode, encode

PILL = 'STOP-THE-APPLICATION'


def envelope(n: int = 0, **headers: Any) -> dict[str, Any]:
    """Return a complete envelope from 'main' to 'mcu'."""
    return {'sender': 'main', 'recipient': 'mcu', 'subject': 'ping', 'body': n,
            'messageid': f'm-{n}', 'threadid': f't-{n}', 'threadindex': 1, 'time': 1.0,
            **headers}


@pytest.fixture
def transports() -> Iterator[Callable[..., SerialTransport]]:
    """Return a factory of started transports (own thread), stopped after the test."""
    made: list[SerialTransport] = []

    def make(path: str, on_envelope: Callable[[dict], None], absent: bool = False,
             **kwargs: Any) -> SerialTransport:
        transport = SerialTransport(path, on_envelope, poison_pill=PILL, **kwargs)
        transport.start()
        made.append(transport)
        assert absent or transport.connected_event.wait(5)
        return transport

    yield make
    for transport in made:
        transport.stop()


@pytest.mark.parametrize('framing', ['json', 'cobs'])
def test_bad_frames_get_one_error_frame_each_and_the_line_goes_on(pty, transports,
                                                                  framing: str) -> None:
    peer, path = pty(framing)
    got: list[dict] = []

    def on_envelope(env: dict) -> None:
        if env['recipient'] == 'ghost':
            raise UnknownRecipient("no head named 'ghost'")
        got.append(env)

    transport = transports(path, on_envelope, framing=framing, max_frame=1000)
    delimiter = peer.delimiter
    peer.send(recipient='echo', subject='ping', body='first')  # the route learns the name 'mcu'
    peer.write(b'\x13\xff garbage \x01\x02' + delimiter)
    peer.write(peer_frame(framing, b'{"recipient": "echo", "subject": ') + delimiter)
    peer.send(recipient='echo', subject=PILL, threadid='t-pill')
    peer.send(recipient='echo', subject='polycephaly.ebrake', threadid='t-ctl')
    peer.send(recipient='ghost', subject='ping', threadid='t-ghost', threadindex=7)
    peer.send(recipient='', subject='error', body={'error': 'a device error'})  # not answered
    peer.write(peer_frame(framing, b'x' * 5000) + delimiter)
    peer.send(recipient='echo', subject='ping', body='last')
    errors = [peer.recv() for _ in range(6)]
    assert all(e['subject'] == 'error' and e['sender'] == 'polycephaly' for e in errors)
    reasons = [e['body']['error'] for e in errors]
    if framing == 'json':
        assert 'malformed JSON' in reasons[0] and 'malformed JSON' in reasons[1]
    else:
        assert reasons[0].startswith('bad frame: not COBS')
        assert reasons[1].startswith('checksum mismatch')  # (that frame carried no CRC)
    assert reasons[2] == reasons[3] == 'refused: control subject'
    assert (errors[2]['threadid'], errors[3]['threadid']) == ('t-pill', 't-ctl')
    assert reasons[4] == "not delivered: no head named 'ghost'"
    assert (errors[4]['threadid'], errors[4]['threadindex']) == ('t-ghost', 8)
    assert reasons[5] == 'frame longer than 1000 bytes'
    assert all(e['recipient'] == 'mcu' for e in errors)  # the name the peer sent as
    assert peer.silent(0.2)  # the device's own error frame was not answered
    assert [e['body'] for e in got] == ['first', 'last']
    assert all(e['route'] == 'serial' for e in got)
    stats = transport.stats
    assert (stats['frames_in'], stats['errors_out'], stats['unanswered']) == (2, 6, 1)
    assert (stats['undelivered'], stats['too_long']) == (1, 1)
    assert (stats['refused'], stats['cobs'], stats['checksum']) == (
        (5, 0, 0) if framing == 'json' else (3, 1, 1))


def peer_frame(framing: str, payload: bytes) -> bytes:
    """Return payload as the peer would frame it without a CRC: COBS-stuffed, or as it is."""
    return cobs_encode(payload) if framing == 'cobs' else payload


def test_a_frame_that_fails_its_crc_is_answered_on_its_thread(pty, transports) -> None:
    peer, path = pty('cobs')
    got: list[dict] = []
    transport = transports(path, got.append, framing='cobs')
    frame = bytearray(peer_frame_of(envelope(5, sender='mcu', recipient='echo')))
    frame[-3] ^= 0x01  # a bit of the CRC flipped on the line
    peer.write(bytes(frame))
    error = peer.recv()
    assert error['subject'] == 'error' and error['threadid'] == 't-5'
    assert error['recipient'] == 'mcu' and 'checksum mismatch' in error['body']['error']
    assert transport.stats['checksum'] == 1 and not got


def peer_frame_of(env: dict) -> bytes:
    """Return an envelope framed by the simulator's own code, with its CRC."""
    return encode(env, 'cobs')


def test_a_peer_that_does_not_read_makes_sends_fail_at_once_never_wait(pty, transports) -> None:
    peer, path = pty()
    transport = transports(path, lambda env: None, max_pending=16 << 10)
    sent, slowest = 0, 0.0
    with pytest.raises(QueueFull, match='max_pending 16384'):
        while True:
            started = time.monotonic()
            try:
                transport.send(envelope(sent, body='x' * 1000))
            finally:
                slowest = max(slowest, time.monotonic() - started)
            sent += 1
            assert sent < 10_000
    assert slowest < 0.05 and sent > 16
    # once the peer reads, everything that was taken arrives, whole and in order
    threads = [peer.recv()['threadid'] for _ in range(sent)]
    assert threads == [f't-{n}' for n in range(sent)]
    assert peer.silent(0.2)
    transport.send(envelope(99))  # and the line takes sends again
    assert peer.recv()['threadid'] == 't-99'


def test_a_full_recipient_holds_the_frames_in_order_then_takes_them(pty, transports) -> None:
    peer, path = pty()
    got: list[int] = []
    refusals = iter(range(20))

    def on_envelope(env: dict) -> None:
        if next(refusals, None) is not None:
            raise QueueFull('full')
        got.append(env['body'])

    transports(path, on_envelope)
    for n in range(10):
        peer.send(recipient='echo', subject='ping', body=n)
    deadline = time.monotonic() + 5
    while len(got) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == list(range(10))
    assert peer.silent(0.1)  # none refused


def test_a_frame_held_past_the_hold_timeout_gets_an_error_frame(pty, transports) -> None:
    peer, path = pty()

    def full(env: dict) -> None:
        raise QueueFull("the queue of head 'echo' is full")

    transport = transports(path, full, hold_timeout=0.2)
    started = time.monotonic()
    peer.send(recipient='echo', subject='ping', threadid='t-1')
    error = peer.recv()
    assert 0.2 <= time.monotonic() - started < 2
    assert error['threadid'] == 't-1' and error['body']['error'] == (
        "not delivered: the queue of head 'echo' is full (for 0.2 s)")
    assert transport.stats['undelivered'] == 1


def test_an_absent_device_is_waited_for_with_doubling_backoff(tmp_path: Path, pty,
                                                              transports) -> None:
    peer, real = pty()
    path = str(tmp_path / 'ttyUSB0')
    transport = transports(path, lambda env: None, backoff=(0.02, 0.16), absent=True)
    time.sleep(1.0)
    attempts = transport.stats['open_failed']
    # 0, 0.02, 0.06, 0.14, 0.30, 0.46, 0.62, 0.78, 0.94: 9 in the first second (50 undoubled)
    assert 6 <= attempts <= 11, attempts
    with pytest.raises(RecipientUnavailable, match='is not open'):
        transport.send(envelope())
    os.symlink(real, path)  # plugged in
    assert transport.connected_event.wait(1)
    transport.send(envelope(1))
    assert peer.recv()['threadid'] == 't-1'


def test_a_path_that_leads_to_another_device_now_is_reopened(tmp_path: Path, pty,
                                                             transports) -> None:
    first, first_path = pty()
    second, second_path = pty()
    path = tmp_path / 'ttyUSB0'
    path.symlink_to(first_path)
    transport = transports(str(path), lambda env: None, check_every=0.05, backoff=(0.01, 0.05))
    transport.send(envelope(1))
    assert first.recv()['threadid'] == 't-1'
    path.unlink()
    path.symlink_to(second_path)  # another adapter at the same path; the first never hung up
    deadline = time.monotonic() + 5
    while transport.stats['opened'] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    transport.send(envelope(2))
    assert second.recv()['threadid'] == 't-2'
    assert first.silent(0.1) and transport.stats['lost'] == 1


def test_given_a_loop_the_transport_runs_in_its_thread(pty) -> None:
    peer, path = pty()
    loop = Loop()
    threads: list[int] = []
    transport = SerialTransport(path, lambda env: threads.append(threading.get_ident()))
    transport.start(loop=loop)  # opens at once, in this thread
    try:
        assert transport.connected
        peer.send(recipient='echo', subject='ping')
        deadline = time.monotonic() + 5
        while not threads and time.monotonic() < deadline:
            loop.run_once(0.1)
        assert threads == [threading.get_ident()]
        assert [t.name for t in threading.enumerate() if t.name.startswith('serial:')] == []
    finally:
        transport.stop()
        loop.close()
    assert not transport.connected


def test_the_device_is_locked_for_this_program(pty, transports) -> None:
    _, path = pty()
    transports(path, lambda env: None)
    with pytest.raises(serial.SerialException, match='Could not exclusively lock'):
        Port(path)


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match='cannot share the line with XON/XOFF'):
        SerialTransport('/dev/null', print, framing='cobs', xonxoff=True)
    with pytest.raises(ConfigurationError, match='baudrate must be a whole number'):
        SerialTransport('/dev/null', print, baudrate=0)
    with pytest.raises(ConfigurationError, match='framing must be one of json, cobs'):
        SerialTransport('/dev/null', print, framing='slip')


def test_a_flood_without_delimiters_costs_one_error_frame_and_bounded_memory(pty,
                                                                            transports) -> None:
    peer, path = pty('cobs')
    got: list[dict] = []
    transport = transports(path, got.append, framing='cobs', max_frame=1000)
    chunk = b'\x07' * 65536
    for _ in range(32):  # 2 MiB of noise and no 0x00
        peer.write(chunk)
        assert len(transport._framing._buf) <= 66 * 1024  # (never more than a read past max)
    peer.write(b'\0' + encode({'sender': 'mcu', 'recipient': 'echo', 'subject': 'ping'}, 'cobs'))
    error = peer.recv()
    assert error['body']['error'] == 'frame longer than 1000 bytes'
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [g['subject'] for g in got] == ['ping'] and peer.silent(0.1)
    assert transport.stats['too_long'] == 1


def test_baud_rate_and_flow_control_reach_the_device(pty) -> None:
    _, path = pty()
    port = Port(path, baudrate=9600, rtscts=True, xonxoff=True)
    try:
        iflag, _, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(port.fd)
        assert ispeed == ospeed == termios.B9600
        assert cflag & termios.CRTSCTS and iflag & termios.IXON and iflag & termios.IXOFF
        assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)  # raw
        assert cc[termios.VMIN] == 1 and not os.get_blocking(port.fd)
        assert port.still_there()
    finally:
        port.close()
        port.close()  # (twice is harmless)
