from setuptools import find_packages, setup

PACKAGE = "franka_driver"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy", "ruckig"],
    extras_require={"franky": ["franky-control"], "pylibfranka": ["pylibfranka"]},
    zip_safe=True,
    description="Franka FR3 driver node (franky / pylibfranka backends) for the CDP ROS 2 stack.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["franka_driver = franka_driver.node:main"]},
)
