"""Tests of polycephaly_ros.routes, one module a module (a package, so test names may repeat)."""
