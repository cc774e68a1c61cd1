from setuptools import find_packages, setup

PACKAGE = "cdp_preflight"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # cdp_core (OnnxPolicy), cdp_policy, cdp_perception, cdp_bringup and franka_driver are the
    # project's own packages; each check imports what it needs lazily and reports a missing one.
    install_requires=["setuptools", "pyyaml", "rich"],
    zip_safe=True,
    description="cdp-preflight: checks a host before the arm moves, each failure with its fix.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["cdp-preflight = cdp_preflight.cli:main"]},
)
