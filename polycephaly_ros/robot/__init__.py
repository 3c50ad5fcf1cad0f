"""The robot composition: a system service and a touchscreen client, both on polycephaly_ros.

* :mod:`.config` - config/robot.yaml (also a ROS parameters file) and its defaults;
* :mod:`.service` - the system service application (network, updates, diagnostics heads);
* :mod:`.touchscreen` - the touchscreen client application (Tk window or headless);
* :mod:`.compose` - both as separate processes from one configuration;
* :mod:`.link` - how the two reach each other (Unix socket or ROS).
"""
