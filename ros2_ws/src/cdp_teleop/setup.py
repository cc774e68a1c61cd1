from setuptools import find_packages, setup

PACKAGE = "cdp_teleop"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy"],
    extras_require={"gamepad": ["pygame>=2.1"]},
    zip_safe=True,
    description="Teleoperation for the CDP stack: keyboard / gamepad / scripted operator -> Cartesian TCP motion -> "
    "IK -> joint chunks through the safety filter, plus episode events for the recorder.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["teleop_node = cdp_teleop.node:main"]},
)
