"""Heads log through rclpy when the program configured no logging: console, /rosout, levels."""

from __future__ import annotations

import signal
import subprocess
import threading

import yaml

from program import ROOT, Program

APP = str(ROOT / 'test' / 'support' / 'log_app.py')


def run_log_app(*ros_args: str) -> Program:
    """Start log_app.py and wait until its main head logged 'all born'."""
    program = Program('-P', APP, *ros_args)
    try:
        program.wait_for(r'\[robot\.main\]: all born', timeout=60)
    except BaseException:
        program.kill()
        raise
    return program


def stop(program: Program) -> str:
    program.proc.send_signal(signal.SIGINT)
    try:
        assert program.finish(timeout=60) == 0, program.output
    finally:
        program.kill()
    return program.output


def test_each_heads_records_are_written_by_rcutils_under_its_node(leftover_processes):
    output = stop(run_log_app())
    # rcutils' console format, as `ros2 launch` shows it: [LEVEL] [time] [node logger]: message
    assert '[INFO] [' in output and '] [robot.talker]: info from talker' in output  # a process
    assert '] [robot.chatter]: info from chatter' in output  # a thread head
    # The framework's records go under the main head's node; nothing below INFO by default.
    assert "] [robot.main.supervisor]: started head 'talker' (process" in output
    assert 'debug from' not in output
    leftover_processes()


def test_ros_args_log_level_sets_one_heads_level_in_its_own_process(leftover_processes):
    program = run_log_app('--ros-args', '--log-level', 'robot.talker:=debug')
    output = stop(program)
    assert '[DEBUG] [' in output and '] [robot.talker]: debug from talker' in output
    assert 'debug from chatter' not in output
    leftover_processes()


def test_records_reach_rosout_with_their_node_and_source_line(ros2):
    program = run_log_app()
    echo = None
    try:
        # /rosout is transient-local: a reader started now still gets what was logged.
        echo = subprocess.Popen([ros2, 'topic', 'echo', '--qos-durability', 'transient_local',
                                 '--qos-reliability', 'reliable', '/rosout',
                                 'rcl_interfaces/msg/Log'], stdout=subprocess.PIPE, text=True)
        records: list[dict] = []
        wanted = {('robot.talker', 'info from talker'), ('robot.chatter', 'info from chatter'),
                  ('robot.main', 'all born')}
        done = threading.Event()

        def read() -> None:
            document: list[str] = []
            for line in echo.stdout:
                if line.strip() != '---':
                    document.append(line)
                    continue
                record = yaml.safe_load(''.join(document))
                document = []
                records.append(record)
                if wanted <= {(r['name'], r['msg']) for r in records}:
                    done.set()

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(60), f'not all on /rosout: {records}'
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait(30)
        stop(program)
    talker = next(r for r in records if r['name'] == 'robot.talker')
    assert talker['level'] == 20 and talker['function'] == 'birth'
    assert talker['file'].endswith('log_app.py') and talker['line'] > 0
    assert any(r['name'] == 'robot.main.supervisor' and 'started head' in r['msg']
               for r in records)
