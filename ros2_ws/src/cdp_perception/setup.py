from setuptools import find_packages, setup

PACKAGE = "cdp_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # opencv-contrib-python-headless 5.0 dropped calibrateHandEye from its Python bindings: stay on 4.x.
    install_requires=[
        "setuptools",
        "numpy",
        "pyyaml",
        "opencv-contrib-python-headless>=4.7,<5",
        "pyrealsense2",
        "mujoco",
        "scipy",
    ],
    zip_safe=True,
    description="RealSense camera node (live, recording, software device fed by the simulator), ArUco object "
    "pose perception and camera calibration (intrinsics, hand-eye) for the CDP ROS 2 stack.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "camera_node = cdp_perception.camera_node:main",
            "sim_camera = cdp_perception.camera_node:sim_main",
            "perception_node = cdp_perception.perception_node:main",
            "cdp-calibrate = cdp_perception.calibration.cli:main",
            "cdp-perception-eval = cdp_perception.loop_cli:main",
        ]
    },
)
