"""The fork server: started once with the head modules imported, from the application's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from program import Program

HERE = Path(__file__).resolve().parent / 'support'


def threads(pid: int) -> list[str]:
    return [Path(f'/proc/{pid}/task/{t}/comm').read_text().strip()
            for t in os.listdir(f'/proc/{pid}/task')]


def test_heads_fork_from_a_server_with_rclpy_imported_but_never_started():
    # (Run from the source tree: a polycephaly_ros folder in the current directory must not
    # shadow the one the application imports.)
    program = Program(str(HERE / 'scale_app.py'), '3', '--ros',
                      cwd=Path(__file__).resolve().parents[1])
    try:
        line = program.wait_for(r'^report ', timeout=90)
        result = json.loads(line.split(' ', 1)[1])
        server = result['fork_server']
        maps = Path(f'/proc/{server}/maps').read_text()
        names = threads(server)
        assert program.finish(60) == 0, program.output
    finally:
        program.kill()
    assert '_rclpy_pybind11' in maps  # rclpy is imported in the server, once for every head
    assert not any(n.startswith('dds.') for n in names), names  # no participant, no DDS
    for head in result['heads']:
        assert head['file'] == result['main']['file']  # the same polycephaly_ros as the app
        assert head['environment'] == result['main']['environment'] | {
            'ROS_DISCOVERY_SERVER': None}  # (what the server was started with is undone)
        assert head['pid'] != server
