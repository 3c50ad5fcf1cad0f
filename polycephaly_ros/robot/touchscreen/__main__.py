"""Run the touchscreen: ``python -m polycephaly_ros.robot.touchscreen`` (``--help``)."""

from .main import cli_main

cli_main()
