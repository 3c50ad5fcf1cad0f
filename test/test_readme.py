"""The README's first example, run as it stands: its hello world shows the reply."""

from __future__ import annotations

import re
import signal

from program import ROOT, Program


def test_the_readme_hello_world_prints_the_reply(tmp_path, leftover_processes):
    readme = (ROOT / 'README.md').read_text()
    code = re.search(r'```python\n(.*?)```', readme, re.S).group(1)
    (tmp_path / 'hello.py').write_text(code)
    program = Program('-P', str(tmp_path / 'hello.py'), cwd=tmp_path)
    try:
        # (through rclpy: its console format, the head's node logger)
        program.wait_for(r"\[INFO\] \[[0-9.]+\] \[robot\.hello\]: main answered: Hi, thanks "
                         r"for writing\.", timeout=60)
        program.proc.send_signal(signal.SIGINT)
        assert program.finish(timeout=60) == 0
    finally:
        program.kill()
    leftover_processes()
