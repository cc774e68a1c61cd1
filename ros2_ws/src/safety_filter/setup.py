from setuptools import find_packages, setup

PACKAGE = "safety_filter"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy", "ruckig"],
    zip_safe=True,
    description="Safety filter between policy/teleop and the Franka driver (limits, Ruckig, workspace box, watchdog, e-stop).",
    license="Apache-2.0",
    entry_points={"console_scripts": ["safety_filter = safety_filter.node:main"]},
)
