#!/usr/bin/env python3
"""A microcontroller-like peer on a serial line: it reads frames and answers, in either framing.

Usage: serial_device.py PATH json|cobs [NAME]

What firmware would do, in the standard library only and apart from the route's own code (the
tests' peer, serial_link.py, uses its framing too: a second implementation of the wire format).
It answers 'ping' (its body), 'add' (the sum of its body) and 'whoami' (its name and pid) with
a reply on the same thread, index + 1, and anything else with an error; replies and errors it
takes silently. 'ask' ({'to': head, 'body': x}) makes it ask that head for a 'ping' itself and
answer with the reply it got (the device's own request/reply). When the line hangs up
(unplugged) it opens PATH again until it is back.
"""

import json
import os
import sys
import time
import tty
import uuid
import zlib


def cobs_encode(data: bytes) -> bytes:
    out, code_at, code = bytearray(b'\1'), 0, 1  # the classic byte-at-a-time encoder
    for byte in data:
        if byte:
            out.append(byte)
            code += 1
        if not byte or code == 255:
            out[code_at], code_at, code = code, len(out), 1
            out.append(1)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError('not COBS')
        out += data[i + 1:i + code]
        i += code
        if code < 255 and i < len(data):
            out.append(0)
    return bytes(out)


def encode(envelope: dict, framing: str) -> bytes:
    payload = json.dumps(envelope, separators=(',', ':')).encode()
    if framing == 'json':
        return payload + b'\n'
    return cobs_encode(payload + zlib.crc32(payload).to_bytes(4, 'little')) + b'\0'


def decode(frame: bytes, framing: str) -> dict | None:
    """Return the envelope in one frame (delimiter removed), or None for a bad one."""
    try:
        if framing == 'cobs':
            data = cobs_decode(frame)
            frame = data[:-4]
            if len(data) < 5 or zlib.crc32(frame) != int.from_bytes(data[-4:], 'little'):
                return None
        envelope = json.loads(frame)
        return envelope if isinstance(envelope, dict) else None
    except ValueError:
        return None


class Device:
    def __init__(self, fd: int, framing: str, name: str) -> None:
        self.fd, self.framing, self.name, self.buf = fd, framing, name, b''
        self.delimiter = b'\n' if framing == 'json' else b'\0'

    def frames(self):
        """Yield each envelope read (None for a bad frame) until the line hangs up."""
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if not data:
                return
            *frames, self.buf = (self.buf + data).split(self.delimiter)
            yield from (decode(f, self.framing) for f in frames if f)

    def send(self, to: str, subject: str, body, thread: str, index: int) -> None:
        os.write(self.fd, encode({'sender': self.name, 'recipient': to, 'subject': subject,
                                  'body': body, 'threadid': thread, 'threadindex': index,
                                  'messageid': uuid.uuid4().hex, 'time': time.time()},
                                 self.framing))

    def serve(self) -> None:
        for m in self.frames():
            if m is None or m.get('subject') in ('reply', 'error'):
                continue
            subject, body, sender = m.get('subject'), m.get('body'), m.get('sender', '')
            if subject == 'ask':
                thread = uuid.uuid4().hex
                self.send(body['to'], 'ping', body['body'], thread, 1)
                body = next((r['body'] for r in self.frames() if r and r['threadid'] == thread),
                            None)
            elif subject in ('add', 'whoami'):
                body = sum(body) if subject == 'add' else {'name': self.name, 'pid': os.getpid()}
            elif subject != 'ping':
                subject, body = 'error', {'error': f'{self.name} does not take {subject!r}'}
            self.send(sender, 'error' if subject == 'error' else 'reply', body,
                      m.get('threadid', ''), m.get('threadindex', 1) + 1)


def main(path: str, framing: str, name: str = 'mcu') -> None:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            time.sleep(0.02)  # unplugged: wait for the line to come back
            continue
        tty.setraw(fd)
        print('ready', flush=True)
        Device(fd, framing, name).serve()
        os.close(fd)


if __name__ == '__main__':
    main(*sys.argv[1:])
