"""External routes: heads that carry JSON envelopes between an application and the outside.

:mod:`.base` holds :class:`~.base.RouteHead`, which joins a transport to the application's
heads (inbound delivery, outbound sending, bounces, remote names); each route is a module or
package of its own holding its transport (framing, connections, permissions) and its heads.
Envelopes are encoded and checked by :mod:`polycephaly_ros.codec`. Nothing is imported here,
so a transport can be used without the head machinery.
"""
