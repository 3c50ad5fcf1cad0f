"""External routes: heads that carry JSON envelopes between an application and the outside.

:mod:`.base` holds :class:`~.base.RouteHead`, which joins a transport to the application's
heads (inbound delivery, outbound sending, bounces, remote names). Each route is a subpackage
(:mod:`.unix_socket`) holding its transports (framing on the wire, connections, permissions)
apart from its route heads. Envelopes are encoded and checked by :mod:`polycephaly_ros.codec`;
:mod:`.framing` (newline-delimited JSON with a frame limit) is shared by every route over a
byte stream. Nothing is imported here, so a transport can be used without the head machinery.
"""
