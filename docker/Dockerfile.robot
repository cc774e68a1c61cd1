# syntax=docker/dockerfile:1.7
# Robot-PC image: ROS 2 Kilted (ros-base) on the CUDA 13 + cuDNN 9 runtime, ONNX Runtime GPU, PyTorch 2.13.0
# (CUDA 13.0 build), libfranka 0.21 bindings (franky-control 2.0.0 / pylibfranka 0.21.3: FR3 robot system
# >= 5.9.0), pyrealsense2, OpenCV contrib < 5, and the workspace built with colcon.
# Build from the repository root:  docker build -f docker/Dockerfile.robot -t cdp/robot:0.1.0 .
# (or docker compose -f docker/compose.robot.yaml build). Ignore rules: docker/Dockerfile.robot.dockerignore.

ARG ROS_DISTRO=kilted
ARG ROS_IMAGE=ros:kilted-ros-base-noble
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

# --- 1. Python packages, pinned, into /opt/cdp/py ----------------------------------------------------
FROM ${ROS_IMAGE} AS pydeps
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip \
 && rm -rf /var/lib/apt/lists/*
COPY docker/requirements.robot.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --target /opt/cdp/py -r /tmp/requirements.txt
COPY cdp_core /tmp/cdp_core
# --no-deps: cdp_core's "onnxruntime" (CPU) must not shadow onnxruntime-gpu; its deps are pinned above.
RUN pip install --no-cache-dir --no-deps --target /opt/cdp/py /tmp/cdp_core

# --- 2. The ROS 2 workspace (ament_python packages), built with colcon -------------------------------
FROM ${ROS_IMAGE} AS build
ARG ROS_DISTRO
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY ros2_ws/src ros2_ws/src
# ros2_ws/src/cdp_bringup/launch is a symlink to the top-level launch/ in the repository; the ignore file
# leaves the link out and the real folder goes into its place.
COPY launch ros2_ws/src/cdp_bringup/launch
RUN . "/opt/ros/${ROS_DISTRO}/setup.sh" \
 && colcon build --merge-install --install-base /opt/cdp/install --base-paths ros2_ws/src \
      --event-handlers console_direct- \
 && rm -rf build log

# --- 3. Runtime -----------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS robot
ARG ROS_DISTRO
# Release of ros-infrastructure/ros-apt-source (the package that adds packages.ros.org and its key).
ARG ROS_APT_SOURCE_VERSION=1.1.0
ARG CDP_UID=1000
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8 ROS_DISTRO=${ROS_DISTRO}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && curl -fsSL -o /tmp/ros2-apt-source.deb \
      "https://github.com/ros-infrastructure/ros-apt-source/releases/download/${ROS_APT_SOURCE_VERSION}/ros2-apt-source_${ROS_APT_SOURCE_VERSION}.$(. /etc/os-release && echo "${VERSION_CODENAME}")_all.deb" \
 && apt-get install -y --no-install-recommends /tmp/ros2-apt-source.deb \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      "ros-${ROS_DISTRO}-ros-base" "ros-${ROS_DISTRO}-rmw-fastrtps-cpp" \
      python3-yaml libusb-1.0-0 libosmesa6 iproute2 iputils-ping \
 && apt-get purge -y curl \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* /tmp/ros2-apt-source.deb
# Ubuntu 24.04 images ship a user "ubuntu" with uid 1000: make room for ours.
RUN (userdel --remove ubuntu 2>/dev/null || true) \
 && useradd --create-home --uid "${CDP_UID}" --shell /bin/bash cdp \
 && mkdir -p /ws/models /ws/calibration /ws/recordings \
 && chown -R cdp:cdp /ws
COPY --from=pydeps /opt/cdp/py /opt/cdp/py
COPY --from=build /opt/cdp/install /opt/cdp/install
COPY docker/entrypoint.sh /usr/local/bin/cdp-entrypoint
# /opt/cdp/py is a pip --target tree: on PYTHONPATH for every interpreter (colcon's scripts run /usr/bin/python3).
ENV PYTHONPATH=/opt/cdp/py \
    PATH=/opt/cdp/py/bin:/opt/cdp/install/lib/cdp_preflight:/opt/cdp/install/lib/cdp_bringup:${PATH} \
    MUJOCO_GL=osmesa \
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp
WORKDIR /ws
USER ${CDP_UID}
ENTRYPOINT ["/usr/local/bin/cdp-entrypoint"]
CMD ["bash"]
