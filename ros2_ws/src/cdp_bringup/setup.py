from glob import glob

from setuptools import find_packages, setup

PACKAGE = "cdp_bringup"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        # launch/ is the repository's top-level launch folder (a symlink here): ros2 launch finds
        # manipulation.launch.py, graph.yaml and config/ in share/cdp_bringup/launch.
        (f"share/{PACKAGE}/launch", glob("launch/*.py") + glob("launch/*.yaml")),
        (f"share/{PACKAGE}/launch/config", glob("launch/config/*.yaml")),
    ],
    install_requires=["setuptools", "pyyaml", "numpy"],
    zip_safe=True,
    description="Bringup of the CDP stack: launch file, node graph, cdp-graph launcher, episode runner.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "cdp-graph = cdp_bringup.launcher:main",
            "cdp-episodes = cdp_bringup.episodes_node:main",
            "cdp-sim-demo = cdp_bringup.demo:main",
            "cdp-live-view = cdp_bringup.live_view_node:main",
            "live_view = cdp_bringup.live_view_node:main",
        ]
    },
)
