"""Tests of polycephaly_ros.routes.unix_socket: framing aside, one test module a module."""
