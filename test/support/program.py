"""Run a program of ours as a real subprocess and follow its log output."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Program:
    """A subprocess whose merged stdout/stderr is read as it comes, without sleeping."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        self.lines: list[str] = []
        self._partial = ''
        self.proc = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED='1'))
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        """Read output until a line matches pattern; return it, or fail after timeout."""
        regex = re.compile(pattern)
        checked = 0
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[checked:]:
                if regex.search(line):
                    return line
            checked = len(self.lines)
            remaining = deadline - time.monotonic()
            assert remaining > 0, f'no line matching {pattern!r} within {timeout} s:\n{self.output}'
            if not self._selector.select(remaining):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536).decode(errors='replace')
            assert chunk, f'program ended before a line matched {pattern!r}:\n{self.output}'
            self._partial += chunk
            *complete, self._partial = self._partial.split('\n')
            self.lines.extend(line + '\n' for line in complete)

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the program to end, keep the rest of its output, return its exit code."""
        rest, _ = self.proc.communicate(timeout=timeout)
        self._partial += rest.decode(errors='replace')
        self.lines.extend(self._partial.splitlines(keepends=True))
        self._partial = ''
        return self.proc.returncode

    @property
    def output(self) -> str:
        """Return everything read so far."""
        return ''.join(self.lines)

    def kill(self) -> None:
        """Kill the program if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
