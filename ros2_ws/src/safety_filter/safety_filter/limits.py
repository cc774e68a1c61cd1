"""The FR3 limit table the filter enforces fractions of: :mod:`cdp_ros_common.fr3_limits`.

Re-exported here so the filter's own modules and its users keep one import; the table itself
lives in one place, shared with the Franka driver's trajectory generator.
"""

from cdp_ros_common.fr3_limits import FR3Limits

__all__ = ["FR3Limits"]
