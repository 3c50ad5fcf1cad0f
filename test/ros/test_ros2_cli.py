"""A head asked from the ROS CLI alone, as the README shows: `ros2 topic pub` and `echo`."""

from __future__ import annotations

import json
import subprocess
import threading

from harness import run_ros_script, until
from heads import RouteEcho

REQUEST = {'sender': 'cli', 'recipient': 'echo', 'subject': 'ping', 'body': 'from the CLI'}


def test_a_request_from_ros2_topic_pub_is_answered_to_ros2_topic_echo(ros2):
    # What the README says to type: a reliable echo (see there why) of the sender's JSON inbox.
    echo = subprocess.Popen([ros2, 'topic', 'echo', '--qos-reliability', 'reliable',
                             '--field', 'data', '/polycephaly/cli/inbox_json',
                             'std_msgs/msg/String'], stdout=subprocess.PIPE, text=True)
    said: list[str] = []
    threading.Thread(target=lambda: said.extend(echo.stdout), daemon=True).start()

    def script(main):
        until(main, lambda: main.node.count_subscribers('/polycephaly/cli/inbox_json'),
              timeout=60)
        # (a thread: the main head goes on serving meanwhile)
        publisher = threading.Thread(target=subprocess.run, daemon=True, kwargs={
            'args': [ros2, 'topic', 'pub', '--once', '--keep-alive', '3',
                     '/polycephaly/echo/inbox_json', 'std_msgs/msg/String',
                     json.dumps({'data': json.dumps(REQUEST)})],
            'capture_output': True, 'timeout': 60})
        publisher.start()
        until(main, lambda: said and not publisher.is_alive(), timeout=60)  # (nothing left)

    try:
        run_ros_script(script, [(RouteEcho, {'name': 'echo'})])
    finally:
        echo.terminate()
        echo.wait(30)
    reply = json.loads(said[0])
    assert (reply['sender'], reply['recipient'], reply['subject']) == ('echo', 'cli', 'reply')
    assert (reply['body']['body'], reply['body']['route']) == ('from the CLI', 'ros')
    assert reply['threadindex'] == 2
