"""Safety filter: the only path from policy / teleop commands to the Franka driver."""

from .filter import CartesianOutput, CartesianSafetyFilter, FilterOutput, SafetyConfig, SafetyFilter
from cdp_core.robot.limits import FR3Limits

__all__ = ["CartesianOutput", "CartesianSafetyFilter", "FilterOutput", "FR3Limits", "SafetyConfig", "SafetyFilter"]
