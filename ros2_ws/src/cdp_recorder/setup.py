from setuptools import find_packages, setup

PACKAGE = "cdp_recorder"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy", "mcap>=1.1", "mcap-ros2-support>=0.5"],
    zip_safe=True,
    description="Crash-safe episode recorder (MCAP, ROS 2 CDR), conversion to the cdp_core episode dataset, replay.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "recorder_node = cdp_recorder.node:main",
            "cdp-record-convert = cdp_recorder.convert:main",
            "cdp-record-replay = cdp_recorder.replay_node:main",
            "cdp-record-plot = cdp_recorder.plot:main",
        ]
    },
)
