"""Start the robot's system service (console script polycephaly-system-service).

Arguments: namespace (ROS namespace, default ""), config (robot.yaml, default the installed
one), log_level (default INFO). Thin on purpose: everything runs without launch as
`polycephaly-system-service --config FILE --namespace NS`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from polycephaly_ros.robot.cli import LOG_LEVELS

PACKAGE = 'polycephaly_ros'
#: What log_level takes (as the script's --log-level: any case, WARN and FATAL too); launch
#: refuses anything else before it starts a process, naming the valid ones.
LEVELS = [*LOG_LEVELS, 'WARN', 'FATAL']
LEVELS += [level.lower() for level in LEVELS]


def default_config() -> str:
    return os.path.join(get_package_share_directory(PACKAGE), 'config', 'robot.yaml')


#: Seconds launch waits after SIGINT before SIGTERM, then before SIGKILL (strings, as launch
#: takes them): above the application's own stop limits (config: threads_timeout, 10 s).
SIGTERM_AFTER, SIGKILL_AFTER = '15', '5'


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='', description='ROS namespace'),
        DeclareLaunchArgument('config', default_value=default_config(),
                              description='robot.yaml with every setting'),
        DeclareLaunchArgument('log_level', default_value='INFO', choices=LEVELS),
        Node(package=PACKAGE, executable='polycephaly-system-service',
             namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
             # launch escalates only after the application's own limits (threads_timeout 10 s):
             sigterm_timeout=SIGTERM_AFTER, sigkill_timeout=SIGKILL_AFTER,
             arguments=['--config', LaunchConfiguration('config'),
                        '--log-level', LaunchConfiguration('log_level')]),
    ])
