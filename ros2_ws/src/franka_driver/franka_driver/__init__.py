"""Franka FR3 driver: libfranka through franky or pylibfranka, 1 kHz loop outside the rclpy thread."""

from .backend import ArmState, Backend, BackendError, DriverConfig, make_backend

__all__ = ["ArmState", "Backend", "BackendError", "DriverConfig", "make_backend"]
