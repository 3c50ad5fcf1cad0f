"""Every head hosts a real rclpy node; process heads start without forking a process that runs rclpy."""

import subprocess
import sys
import threading
import time

import pytest

from harness import ask, run_ros_script, run_script, until
from heads import Echo, ServicedEcho
from polycephaly_ros.ros import host as rclpy_host


def graph_names(node):
    return {f'{ns.rstrip("/")}/{name}' for name, ns in node.get_node_names_and_namespaces()}


def test_every_head_is_a_node_in_the_graph_under_the_application_namespace():
    heads = [(Echo, {'name': 'worker', 'mode': 'process'}), (Echo, {'name': 'helper'})]

    def script(main):
        expected = {'/robot/main', '/robot/worker', '/robot/helper'}
        until(main, lambda: expected <= graph_names(main.node), timeout=20)
        return (ask(main, 'worker', 'whoami'), ask(main, 'helper', 'whoami'),
                main.node.get_fully_qualified_name())

    worker, helper, main_node = run_ros_script(script, heads, namespace='/robot').outcome
    assert worker['node'] == '/robot/worker' and helper['node'] == '/robot/helper'
    assert main_node == '/robot/main'


def test_process_heads_never_fork_from_a_process_running_rclpy():
    received = []
    arrived = threading.Event()

    def script(main):
        from std_msgs.msg import String

        def on_chatter(message):
            received.append(message.data)
            arrived.set()

        main.node.create_subscription(String, 'chatter', on_chatter, 10)
        assert rclpy_host.forks_after_init() == 0
        first = ask(main, 'talker', 'whoami')
        main.application.restart('talker')  # a new process, started while rclpy runs here
        second = ask(main, 'talker', 'whoami')

        def heard():
            if not arrived.is_set():  # discovery takes a moment: publish until heard
                ask(main, 'talker', 'publish', 'from the restarted head')
            return arrived.is_set()

        until(main, heard, timeout=20)
        return first, second, rclpy_host.forks_after_init()

    first, second, forks_here = run_ros_script(script, [(Echo, {'name': 'talker', 'mode': 'process'})]).outcome
    assert first['pid'] != second['pid']
    assert forks_here == 0 and first['forks_after_init'] == second['forks_after_init'] == 0
    assert received and received[0] == 'from the restarted head'


def test_heads_run_without_ros_when_asked():
    app = run_script(lambda main: (main.node, ask(main, 'echo', 'whoami')['node']),
                     [(Echo, {'mode': 'process'})], ros=False)
    assert app.outcome == (None, None)


def test_a_ros_callback_that_raises_is_logged_and_the_others_keep_being_served(caplog):
    from std_msgs.msg import String

    host = rclpy_host.RclpyHost('/host_test')
    try:
        node = host.create_node('callbacks')
        heard: list[str] = []
        got_all = threading.Event()

        def fragile(msg: String) -> None:
            raise ValueError(f'bug on {msg.data}')

        def steady(msg: String) -> None:
            heard.append(msg.data)
            if len(heard) == 3:
                got_all.set()

        node.create_subscription(String, 'chatter', fragile, 10)
        node.create_subscription(String, 'chatter', steady, 10)
        publisher = node.create_publisher(String, 'chatter', 10)
        for word in ('one', 'two', 'three'):
            publisher.publish(String(data=word))
        assert got_all.wait(20), f'heard only {heard}'
        assert heard == ['one', 'two', 'three']
        assert 'a ROS callback raised' in caplog.text and 'ValueError: bug on' in caplog.text
    finally:
        host.shutdown()


def test_sub_head_nodes_are_lean_unless_their_class_asks_for_node_services():
    heads = [(Echo, {'name': 'lean', 'mode': 'process'}),
             (ServicedEcho, {'name': 'full', 'mode': 'process'})]

    def services(node, name):
        return {s.rsplit('/', 1)[1] for s, _ in
                node.get_service_names_and_types_by_node(name, '/')}

    def script(main):
        until(main, lambda: {'lean', 'full'} <= {n for n in main.node.get_node_names()},
              timeout=20)
        until(main, lambda: 'get_parameters' in services(main.node, 'full'), timeout=20)
        ask(main, 'lean', 'ping')  # (born and answering: its endpoints are all made)
        return services(main.node, 'main'), services(main.node, 'lean'), \
            services(main.node, 'full')

    main_services, lean, full = run_ros_script(script, heads).outcome
    parameters = {'get_parameters', 'set_parameters', 'list_parameters', 'describe_parameters',
                  'get_parameter_types', 'set_parameters_atomically'}
    assert parameters | {'get_type_description'} <= main_services  # the main head keeps them
    assert parameters | {'get_type_description'} <= full
    assert lean == set(), lean


def test_a_teardown_step_that_hangs_holding_the_gil_ends_the_process():
    """As a Fast DDS deadlock does: only faulthandler's C watchdog can act then."""
    code = ('import ctypes\n'
            'from polycephaly_ros.ros.host import bounded\n'
            'with bounded(0.5):\n'
            '    ctypes.PyDLL(None).sleep(60)  # a C call that keeps the GIL\n')
    started = time.monotonic()
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and time.monotonic() - started < 30
    assert 'Timeout (0:00:00.500000)!' in out.stderr and 'in <module>' in out.stderr


@pytest.mark.parametrize('code', [0, 3])
def test_the_exit_timer_ends_a_process_held_in_c_with_the_code_it_was_given(code):
    """The main process's teardown guard: the application's exit code, not a crash's."""
    program = ('import ctypes\n'
               'from polycephaly_ros.ros import native\n'
               f'native.exit_after(0.5, {code})\n'
               'ctypes.PyDLL(None).sleep(60)  # a C call that keeps the GIL\n')
    out = subprocess.run([sys.executable, '-P', '-c', program], capture_output=True, text=True,
                         timeout=60)  # (-P: the installed package, with its native library)
    assert out.returncode == code and 'did not end in time' in out.stderr


def test_a_disarmed_exit_timer_lets_the_process_go_on():
    program = ('import time\n'
               'from polycephaly_ros.ros import native\n'
               'native.exit_after(0.3, 3)\n'
               'native.exit_after(0, 0)\n'
               'time.sleep(1)\n'
               'print("still here")\n')
    out = subprocess.run([sys.executable, '-P', '-c', program], capture_output=True, text=True,
                         timeout=60)  # (-P: the installed package, with its native library)
    assert out.returncode == 0 and out.stdout == 'still here\n'
