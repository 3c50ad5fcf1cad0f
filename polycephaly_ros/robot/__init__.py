"""The robot composition: a system service and a touchscreen client, both on polycephaly_ros.

* :mod:`.config` - config/robot.yaml (also a ROS parameters file) and its defaults;
* :mod:`.service` - the system service application (network, updates, diagnostics heads);
* :mod:`.touchscreen` - the touchscreen client application (its main head and ``main``), with
  :mod:`.client_head` (the heads that carry its requests to the service), :mod:`.gui` (the Tk
  window), :mod:`.headless` (the view without a display), :mod:`.events` (its stdout reports),
  :mod:`.screen_text` (view names, commands, status lines) and :mod:`.qr` (the pairing code);
* :mod:`.compose` - both as separate processes from one configuration;
* :mod:`.link` - how the two reach each other (Unix socket or ROS).
"""
