"""Start the robot's touchscreen client (console script polycephaly-touchscreen).

Arguments: namespace (default ""), config (robot.yaml, default the installed one), headless
(auto, on or off; default auto: no window without a display), transport (uds, ros, dbus,
mqueue or serial; default "" = the config's touchscreen.transport), log_level. Everything runs
without launch as `polycephaly-touchscreen --config FILE --headless auto`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
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


def needs_a_display(context) -> list:
    """Refuse headless:=off without a display, before the touchscreen starts (one line)."""
    if LaunchConfiguration('headless').perform(context) == 'off' and not os.environ.get('DISPLAY'):
        raise RuntimeError('headless:=off but there is no display (DISPLAY is not set): set '
                           'DISPLAY, or use headless:=on or headless:=auto')
    return []


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='', description='ROS namespace'),
        DeclareLaunchArgument('config', default_value=default_config(),
                              description='robot.yaml with every setting'),
        DeclareLaunchArgument('headless', default_value='auto', choices=['auto', 'on', 'off']),
        DeclareLaunchArgument('transport', default_value='',
                              description='uds, ros, dbus, mqueue or serial '
                                          '("" = touchscreen.transport)'),
        DeclareLaunchArgument('log_level', default_value='INFO', choices=LEVELS),
        OpaqueFunction(function=needs_a_display),
        Node(package=PACKAGE, executable='polycephaly-touchscreen',
             namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
             # launch escalates only after the application's own limits (threads_timeout 10 s):
             sigterm_timeout=SIGTERM_AFTER, sigkill_timeout=SIGKILL_AFTER,
             arguments=['--config', LaunchConfiguration('config'),
                        '--headless', LaunchConfiguration('headless'),
                        '--transport', LaunchConfiguration('transport'),
                        '--log-level', LaunchConfiguration('log_level')]),
    ])
