"""pip install (-e) . for the pure-Python core of polycephaly_ros (no generated messages).

The ROS build (colcon, ament_cmake) ignores this file: package.xml and CMakeLists.txt win.
Name, version and description are read from package.xml so there is one source.
"""

import os
import xml.etree.ElementTree as ET

from setuptools import find_packages, setup

_HERE = os.path.dirname(os.path.abspath(__file__))
_PKG = ET.parse(os.path.join(_HERE, 'package.xml')).getroot()

setup(
    name=_PKG.findtext('name'),
    version=_PKG.findtext('version'),
    description=_PKG.findtext('description').strip(),
    license=_PKG.findtext('license'),
    packages=find_packages(include=['polycephaly_ros', 'polycephaly_ros.*']),
)
