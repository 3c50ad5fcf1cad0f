"""Everything that needs rclpy: the rclpy host, inbox topics, topic bridges, message conversion.

Nothing is imported here: the core (envelopes, bus, heads, supervision) runs without ROS, and
loads these modules only for an application that runs with it.
"""
