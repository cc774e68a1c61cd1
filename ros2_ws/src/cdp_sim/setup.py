from setuptools import find_packages, setup

PACKAGE = "cdp_sim"

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
    description="franky-sim with a task scene, plus ground-truth object pose and task success.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["sim_robot = cdp_sim.node:main", "agentview_camera = cdp_sim.agentview_node:main"]
    },
)
