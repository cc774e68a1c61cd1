"""Shared pieces of the CDP ROS 2 stack: names, message conversions, parameters, diagnostics."""
