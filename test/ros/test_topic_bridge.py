"""Generic topic bridges: any ROS topic to a head as envelopes, and envelopes to any topic."""

from __future__ import annotations

import math
import os
import threading

import pytest

from harness import ask, run_ros_script, until
from polycephaly_ros import ConfigurationError, Process, message_filter
from polycephaly_ros.ros.topic_bridge import BridgeHead, load_config

EXAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'config',
                       'topic_bridges.example.yaml')


# -- configuration --------------------------------------------------------------------------
def test_configuration_is_checked():
    checked = load_config(EXAMPLE)
    assert [e['topic'] for e in checked['inbound']] == ['chatter', 'odom_pose']
    assert [e['subject'] for e in checked['outbound']] == ['(?i)drive', 'say']
    with pytest.raises(ConfigurationError, match=r"unknown key\(s\) \['topics'\]"):
        load_config({'inbound': [{'topics': 'x', 'topic': 'y', 'type': 'std_msgs/msg/String'}]})
    with pytest.raises(ConfigurationError, match="'subject' is required"):
        load_config({'outbound': [{'topic': 'x', 'type': 'std_msgs/msg/String'}]})
    with pytest.raises(ConfigurationError, match='unknown key'):
        load_config({'sideways': []})


# -- bridges on a live graph ---------------------------------------------------------------------
def test_topics_reach_heads_and_envelopes_become_published_messages(leftover_processes):
    config = {
        'inbound': [{'topic': 'chatter', 'type': 'std_msgs/msg/String', 'to': 'main',
                     'subject': 'heard'},
                    {'topic': 'pose', 'type': 'geometry_msgs/msg/PoseStamped', 'to': 'main'}],
        'outbound': [{'topic': 'cmd_vel', 'type': 'geometry_msgs/msg/Twist',
                      'subject': '(?i)drive'},
                     {'topic': 'say', 'type': 'std_msgs/msg/String', 'subject': 'say'}],
    }

    def script(main):
        from geometry_msgs.msg import PoseStamped, Twist
        from std_msgs.msg import String

        node = main.node
        got = []
        main.add_filter(got.append, route='ros', subject='heard|pose')
        chatter = node.create_publisher(String, 'chatter', 10)
        pose_pub = node.create_publisher(PoseStamped, 'pose', 10)
        twists, said = [], []
        lock = threading.Lock()
        node.create_subscription(Twist, 'cmd_vel', lambda m: twists.append(m), 10)
        node.create_subscription(String, 'say', lambda m: said.append(m.data), 10)
        pose = PoseStamped()
        pose.header.frame_id = 'odom'
        pose.pose.position.y = -2.0

        def heard(subject):
            if not any(m['subject'] == subject for m in got):  # publish until discovered
                if subject == 'heard':
                    chatter.publish(String(data='hello bridge'))
                else:
                    pose_pub.publish(pose)
            return [m for m in got if m['subject'] == subject]

        text = until(main, lambda: heard('heard'), timeout=20)[0]
        posed = until(main, lambda: heard('pose'), timeout=20)[0]

        def driven():
            with lock:
                if not twists:
                    main.send('bridge', 'Drive', {'linear': {'x': 0.5}, 'angular': {'z': -1}})
                return twists
        twist = until(main, driven, timeout=20)[0]

        def spoken():
            if not said:
                main.send('bridge', 'say', 'bare body')
            return said
        spoken_text = until(main, spoken, timeout=20)[0]
        refused = ask(main, 'bridge', 'drive', {'linear': {'q': 1}})
        return text, posed, (twist.linear.x, twist.angular.z), spoken_text, refused

    text, posed, twist, spoken, refused = run_ros_script(
        script, [(BridgeHead, {'name': 'bridge', 'config': config, 'mode': 'process'})],
        namespace='/robot').outcome
    assert text['body'] == {'data': 'hello bridge'} and text['route'] == 'ros'
    assert text['topic'] == '/robot/chatter' and text['msgtype'] == 'std_msgs/msg/String'
    assert text['sender'] == 'bridge' and text['recipient'] == 'main'
    assert posed['subject'] == 'pose' and posed['body']['header']['frame_id'] == 'odom'
    assert math.isclose(posed['body']['pose']['position']['y'], -2.0)
    assert twist == (0.5, -1.0) and spoken == 'bare body'
    assert "unknown field(s) 'q'" in refused['error'] and '/robot/cmd_vel' in refused['error']
    leftover_processes()


HOLD = threading.Event()


class Keeper(Process):
    """Keep the numbers bridged to this head; 'hold' keeps it busy until HOLD is set."""

    def birth(self) -> None:
        super().birth()
        self.seen: list[int] = []

    @message_filter(route='ros', subject='numbers')
    def number(self, message: dict) -> None:
        self.seen.append(message['body']['data'])

    @message_filter(subject='hold')
    def hold(self, message: dict) -> None:
        self.reply(message, 'holding')
        HOLD.wait(30)

    @message_filter(subject='report')
    def report(self, message: dict) -> None:
        self.reply(message, self.seen)


class SlowBridge(Keeper, BridgeHead):
    """A bridge head that is its own keeper."""


@pytest.mark.parametrize('to', ['bridge', 'keeper'])
def test_a_bridge_to_a_busy_head_loses_nothing_while_its_queue_is_full(to: str):
    count = 60  # twelve times the queue
    reliable = {'history': 'keep_all', 'reliability': 'reliable'}
    config = {'inbound': [{'topic': 'numbers', 'type': 'std_msgs/msg/Int32', 'to': to,
                           'subject': 'numbers', 'qos': reliable}]}
    if to == 'keeper':  # and a topic for the bridge head itself, which must keep flowing
        config['inbound'].append({'topic': 'more', 'type': 'std_msgs/msg/Int32',
                                  'subject': 'numbers', 'qos': reliable})

    def script(main):
        from std_msgs.msg import Int32

        from polycephaly_ros.ros.topic_bridge import make_qos

        pub = main.node.create_publisher(Int32, 'numbers', make_qos(reliable, 'test'))
        until(main, lambda: pub.get_subscription_count() > 0, timeout=20)
        HOLD.clear()
        assert ask(main, to, 'hold') == 'holding'  # the receiving head is busy from now on
        for i in range(count):
            pub.publish(Int32(data=i))
        if to == 'keeper':  # the keeper's queue fills up; the bridge head's other topic flows
            from rclpy.duration import Duration

            assert pub.wait_for_all_acked(Duration(seconds=20))
            more = main.node.create_publisher(Int32, 'more', make_qos(reliable, 'test'))
            until(main, lambda: more.get_subscription_count() > 0, timeout=20)
            for i in range(3):
                more.publish(Int32(data=-i))
            until(main, lambda: ask(main, 'bridge', 'report', timeout=5) == [0, -1, -2])
        HOLD.set()

        def complete():
            seen = ask(main, to, 'report')
            return seen if len(seen) >= count else None
        return until(main, complete, timeout=30)

    heads = [(SlowBridge, {'name': 'bridge', 'config': config})]
    if to == 'keeper':
        heads.append((Keeper, {'name': 'keeper'}))
    seen = run_ros_script(script, heads, namespace='/robot', queue_size=5).outcome
    assert seen == list(range(count))


def test_a_bridge_with_a_missing_message_package_fails_at_birth():
    config = {'inbound': [{'topic': 'x', 'type': 'nosuch_msgs/msg/Thing'}]}

    def script(main):
        from polycephaly_ros.ros.topic_bridge import TopicBridge

        with pytest.raises(ConfigurationError, match="inbound\\[0\\] \\(x\\).*'nosuch_msgs'"):
            TopicBridge(main, config)
        with pytest.raises(ConfigurationError, match="no head named 'ghost'"):
            TopicBridge(main, {'inbound': [{'topic': 'x', 'type': 'std_msgs/msg/String',
                                            'to': 'ghost'}]})
        return True

    assert run_ros_script(script, namespace='/robot').outcome
