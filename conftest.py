"""Repository-wide pytest set-up: each test session gets its own ROS 2 domain on loopback only.

Set before any test imports rclpy, so concurrent runs (CI, a developer's own stack) never see
each other's topics.
"""

import os
import random

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(30, 200)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
