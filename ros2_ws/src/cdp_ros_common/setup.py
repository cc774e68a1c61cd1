from setuptools import find_packages, setup

PACKAGE = "cdp_ros_common"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy"],
    zip_safe=True,
    description="Shared names, message conversions, parameter loading and diagnostics for the CDP ROS 2 stack.",
    license="Apache-2.0",
)
