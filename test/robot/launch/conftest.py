"""launch_testing files: run by the real `launch_test` (test_robot_launch.py), not collected here."""

collect_ignore = ['robot_launch_test.py']
