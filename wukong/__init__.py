"""Wukong: run virtual machines on KubeVirt from one ``Wukong`` resource."""

__version__ = "0.1.0"
