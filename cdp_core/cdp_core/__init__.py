"""Contractive Diffusion Policies: training, fixed-step samplers, contraction loss and ONNX export.

This package never imports ROS; the ROS 2 nodes in ``ros2_ws`` wrap it.
"""

__version__ = "0.1.0"
