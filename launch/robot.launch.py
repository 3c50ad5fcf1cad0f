"""Start the whole robot: the system service and the touchscreen, from one config.

Arguments: namespace, config, headless, transport, log_level (see the two included files).
Without launch, `polycephaly-robot --config FILE` does the same (and is what `./dev run` runs).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

PACKAGE = 'polycephaly_ros'


def generate_launch_description() -> LaunchDescription:
    here = os.path.join(get_package_share_directory(PACKAGE), 'launch')
    # Included files share the launch configurations, so both applications get the same
    # namespace, config and log_level; the touchscreen's file also declares headless and
    # transport. The service comes first (the touchscreen shows it unreachable until it is up).
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(
            os.path.join(here, 'system_service.launch.py'))),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(
            os.path.join(here, 'touchscreen.launch.py'))),
    ])
