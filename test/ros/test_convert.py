"""Converting envelopes to ROS messages and back, and any message to a dict and back."""

from __future__ import annotations

import pytest

from polycephaly_ros import ConfigurationError, EnvelopeError, NotSerializable
from polycephaly_ros.ros import convert

pytestmark = pytest.mark.fast


def test_message_to_dict_and_back_covers_nesting_arrays_sequences_and_bytes():
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from std_msgs.msg import Float64MultiArray, UInt8MultiArray

    pose = PoseWithCovarianceStamped()
    pose.header.frame_id = 'map'
    pose.header.stamp.sec = 12
    pose.pose.pose.position.x = 1.5
    pose.pose.covariance[0] = 0.25
    as_dict = convert.message_to_dict(pose)
    assert as_dict['header'] == {'stamp': {'sec': 12, 'nanosec': 0}, 'frame_id': 'map'}
    assert as_dict['pose']['pose']['position'] == {'x': 1.5, 'y': 0.0, 'z': 0.0}
    assert len(as_dict['pose']['covariance']) == 36 and as_dict['pose']['covariance'][0] == 0.25
    assert convert.dict_to_message(as_dict, PoseWithCovarianceStamped) == pose

    array = convert.dict_to_message(
        {'layout': {'dim': [{'label': 'rows', 'size': 2, 'stride': 2}]}, 'data': [1, 2.5]},
        Float64MultiArray)
    assert convert.message_to_dict(array) == {
        'layout': {'dim': [{'label': 'rows', 'size': 2, 'stride': 2}], 'data_offset': 0},
        'data': [1.0, 2.5]}
    raw = convert.dict_to_message({'data': [0, 255, 7]}, UInt8MultiArray)
    assert convert.message_to_dict(raw)['data'] == [0, 255, 7]


def test_dict_to_message_names_unknown_fields_and_wrong_values():
    from geometry_msgs.msg import PoseWithCovariance, Twist

    with pytest.raises(EnvelopeError, match=r"unknown field\(s\) 'q' for geometry_msgs/msg/Vector3"):
        convert.dict_to_message({'linear': {'q': 1}}, Twist)
    with pytest.raises(EnvelopeError, match=r'Twist.angular.z: expected a number'):
        convert.dict_to_message({'angular': {'z': 'fast'}}, Twist)
    with pytest.raises(EnvelopeError, match='exactly 36 items'):
        convert.dict_to_message({'covariance': [0.0]}, PoseWithCovariance)
    with pytest.raises(EnvelopeError, match='expected an object'):
        convert.dict_to_message({'linear': 3}, Twist)


def test_import_message_type_says_what_is_missing():
    assert convert.import_message_type('std_msgs/msg/String').__name__ == 'String'
    with pytest.raises(ConfigurationError, match="package 'nosuch_msgs' is not installed"):
        convert.import_message_type('nosuch_msgs/msg/Thing')
    with pytest.raises(ConfigurationError, match="has no message 'Nope'"):
        convert.import_message_type('std_msgs/msg/Nope')
    with pytest.raises(ConfigurationError, match='pkg/msg/Type'):
        convert.import_message_type('std_msgs.String')


def test_envelope_to_message_and_back_is_lossless_for_json_values():
    original = {'sender': 'peer', 'recipient': 'main', 'subject': 's', 'messageid': 'm-1',
                'threadid': 't-1', 'threadindex': 7, 'time': 1234.5, 'priority': 0.5,
                'body': {'a': [1, 2.5, None, True, 'x'], 'b': {'c': 'd'}}, 'acme': [1, {'z': 2}]}
    back = convert.from_message(convert.to_message(original))
    assert back == dict(original, route='ros')
    with pytest.raises(NotSerializable, match="'body'"):
        convert.to_message(dict(original, body={1, 2}))
    with pytest.raises(NotSerializable, match="'acme'"):
        convert.to_message(dict(original, acme=object()))
    with pytest.raises(EnvelopeError, match='threadindex'):
        convert.to_message(dict(original, threadindex=0))
    message = convert.to_message(dict(original, via='uds'))
    assert 'via' not in convert.from_message(message)  # replies to the graph go back to it
