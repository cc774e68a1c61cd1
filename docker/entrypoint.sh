#!/usr/bin/env bash
# Entry point of the CDP images: the ROS 2 environment and the colcon-built workspace, then the command.
set -e
# shellcheck disable=SC1090
. "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
. /opt/cdp/install/setup.bash
exec "$@"
