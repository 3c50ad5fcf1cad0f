"""robot.launch.py the ROS way: launch_testing starts it, waits on output, checks the exits.

Run by test/robot/test_robot_launch.py with the real `launch_test` (launch_testing's pytest
plugin does not load under pytest 8); by hand: ./dev env -- launch_test <this file>
config:=<robot.yaml>.
"""

import os
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import pytest
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource


@pytest.mark.launch_test
def generate_test_description():
    robot = os.path.join(get_package_share_directory('polycephaly_ros'), 'launch',
                         'robot.launch.py')
    config = launch.substitutions.LaunchConfiguration('config')
    return launch.LaunchDescription([
        launch.actions.DeclareLaunchArgument('config'),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(robot),
                                 launch_arguments={'config': config, 'headless': 'on'}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestBothApplicationsTalk(unittest.TestCase):
    """While running: the touchscreen got the service's status over the socket."""

    def test_the_touchscreen_shows_the_service_status(self, proc_output):
        proc_output.assertWaitFor('touchscreen: status #1: service pid ', timeout=60,
                                  stream='stdout')
        proc_output.assertWaitFor('system service up', timeout=10, stream='stderr')


@launch_testing.post_shutdown_test()
class TestEveryProcessEndedCleanly(unittest.TestCase):
    """After launch stopped them: both applications exited 0."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
