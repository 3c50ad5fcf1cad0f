"""External routes: carry JSON envelopes between an application and the outside.

One subpackage a route (:mod:`.unix_socket`), each holding its transports (framing on the wire,
connections, permissions) apart from its route heads (:class:`polycephaly_ros.route.RouteHead`
subclasses that wire a transport to the application's heads). Envelopes are encoded and checked
by :mod:`polycephaly_ros.codec`; :mod:`.framing` (newline-delimited JSON with a frame limit) is
shared by every route over a byte stream.
"""
