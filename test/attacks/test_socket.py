"""Attacks on the Unix-socket route: memory, half-closed clients, names, other users."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import psutil
import pytest

from harness import run_script
from heads import RouteEcho
from polycephaly_ros import Process
from polycephaly_ros.routes.unix_socket import UnixSocketServerHead
from program import Program
from raw_client import RawClient

APP = str(Path(__file__).resolve().parents[1] / 'support' / 'uds_server_app.py')
MiB = 1 << 20


def _serve(path: Path, *options: str) -> Program:
    program = Program(APP, str(path), *options)
    program.wait_for('^ready', timeout=30)
    return program


def _stop(program: Program) -> None:
    program.proc.send_signal(signal.SIGINT)
    assert program.finish(timeout=30) == 0, program.output


@pytest.mark.timeout(120)
def test_a_thousand_slowloris_clients_cost_no_more_than_the_buffer_limit(tmp_path,
                                                                         leftover_processes):
    path = tmp_path / 's'
    limit = 16 * MiB
    program = _serve(path, f'max_buffered={limit}')
    server = psutil.Process(program.proc.pid)
    attackers: list[socket.socket] = []
    try:
        before = server.memory_info().rss
        peak = before
        for _ in range(1000):  # each holds a frame just under max_frame with no newline
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect(str(path))
                sock.sendall(b'{' + b'x' * (MiB - 8))
            except OSError:
                pass  # turned away or closed by the server: the limits at work
            attackers.append(sock)
            peak = max(peak, server.memory_info().rss)
        client = RawClient(path)  # a well-behaved client is still served
        client.send(recipient='echo', subject='ping', body='fine')
        reply = client.recv()
        client.close()
    finally:
        for sock in attackers:
            sock.close()
        _stop(program)
    grew = (peak - before) / MiB
    print(f'\n1000 slowloris clients: the server grew by {grew:.1f} MiB at most '
          f'(max_buffered {limit // MiB} MiB)')
    assert reply['body']['body'] == 'fine'
    assert peak - before <= limit + 4 * MiB, f'{grew:.1f} MiB'  # (was about 1 GB)
    leftover_processes()


@pytest.mark.timeout(60)
def test_a_half_closed_client_gets_its_reply_from_a_process_head(tmp_path, leftover_processes):
    path = tmp_path / 's'
    program = _serve(path)
    try:
        request = orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'shell',
                                'body': 'hi'}).decode()
        # echo … | socat: socat shuts down its write side at the end of its input at once
        done = subprocess.run(f"echo '{request}' | socat -t 10 - UNIX-CONNECT:{path}",
                              shell=True, capture_output=True, timeout=30)
    finally:
        _stop(program)
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1, done
    reply = orjson.loads(lines[0])
    assert reply['subject'] == 'reply' and reply['body']['body'] == 'hi'
    leftover_processes()


def test_a_name_held_by_a_live_client_cannot_be_taken_nor_a_head_s(tmp_path):
    path = tmp_path / 's'

    def script(main: Process):
        alice, mallory = RawClient(path), RawClient(path)
        try:
            alice.send(recipient='echo', subject='ping', sender='alice', body=0)
            assert alice.recv()['body']['body'] == 0  # alice holds her name now
            mallory.send(recipient='echo', subject='ping', sender='alice', body='stolen?')
            refused = mallory.recv()
            mallory.send(recipient='echo', subject='ping', sender='main', body='as a head?')
            as_head = mallory.recv()
            for n in range(1, 201):  # and every reply to alice still reaches alice
                alice.send(recipient='echo', subject='ping', sender='alice', body=n)
            got = [alice.recv()['body']['body'] for _ in range(200)]
            return refused, as_head, got
        finally:
            alice.close()
            mallory.close()

    heads = [(UnixSocketServerHead, {'name': 'uds_server', 'path': str(path)}),
             (RouteEcho, {'name': 'echo'})]
    refused, as_head, got = run_script(script, heads).outcome
    assert refused['subject'] == 'error'
    assert "sender 'alice' is the name of another client" in refused['body']['error']
    assert as_head['subject'] == 'error'
    assert "sender 'main' is a head of this application" in as_head['body']['error']
    assert got == list(range(1, 201))


def test_peer_credentials_decide_who_may_connect(tmp_path, caplog):
    path = tmp_path / 's'

    def script(main: Process):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(path))
        data = b''
        while chunk := sock.recv(4096):  # the error frame, then the end of the connection
            data += chunk
        sock.close()
        return orjson.loads(data)

    heads = [(UnixSocketServerHead, {'name': 'uds_server', 'path': str(path),
                                     'allowed_uids': [os.getuid() + 4242]}),
             (RouteEcho, {'name': 'echo'})]
    refused = run_script(script, heads).outcome
    assert refused['subject'] == 'error'
    assert f'uid {os.getuid()} may not connect' in refused['body']['error']
    assert f'uid {os.getuid()}' in caplog.text and 'pid' in caplog.text


NOBODY = 65534
_AS_NOBODY = '''
import os, socket, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print('refused by the file system:', e.strerror); sys.exit(0)
data = b''  # (turned away at once, before it says anything)
while chunk := s.recv(4096):
    data += chunk
print(data.decode().strip())
'''


def _as_nobody(path: Path) -> str:
    done = subprocess.run([sys.executable, '-S', '-c', _AS_NOBODY, str(path)],
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done
    return done.stdout.decode().strip()


@pytest.mark.skipif(os.getuid() != 0, reason='needs root to act as uid nobody')
def test_another_user_cannot_reach_a_private_socket_nor_one_that_lets_it_in_by_mode():
    # A directory anyone may pass through, so that only the socket's own mode and the uid
    # check decide (the tests' own temporary directories are private).
    shared = Path(tempfile.mkdtemp(prefix='pcy-nobody-', dir='/tmp'))
    shared.chmod(0o755)
    private, open_by_mode = shared / 'private', shared / 'open'

    def script(main: Process):
        return _as_nobody(private), _as_nobody(open_by_mode)

    heads = [(UnixSocketServerHead, {'name': 'private', 'path': str(private)}),
             (UnixSocketServerHead, {'name': 'open', 'path': str(open_by_mode),
                                     'socket_mode': 0o666, 'allowed_uids': [os.getuid()]}),
             (RouteEcho, {'name': 'echo'})]
    try:
        at_private, at_open = run_script(script, heads).outcome
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert at_private == 'refused by the file system: Permission denied'
    refused = orjson.loads(at_open)
    assert refused['subject'] == 'error' and f'uid {NOBODY} may not connect' in \
        refused['body']['error']
