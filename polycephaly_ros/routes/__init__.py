"""External routes: transports that carry JSON envelopes between an application and the outside.

Each route is transport only (framing, connections, permissions); envelopes are encoded and
checked by :mod:`polycephaly_ros.codec`, and wiring a route to heads is done elsewhere.
"""
