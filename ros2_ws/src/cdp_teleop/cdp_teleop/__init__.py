"""Teleoperation: input devices -> Cartesian TCP target -> IK -> joint chunks through the safety filter."""
