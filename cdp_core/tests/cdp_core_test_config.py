"""The small training config the cdp_core tests share (a module of its own: every ROS package's
test folder has a conftest.py too, so ``from conftest import ...`` is ambiguous in a full run).
The config itself is :mod:`cdp_core.testing`'s, shared with the ROS packages' tests."""

from cdp_core.testing import small_config

__all__ = ["small_config"]
