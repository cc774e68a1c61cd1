from setuptools import find_packages, setup

PACKAGE = "cdp_policy"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # cdp_core (OnnxPolicy, the metadata contract) and cdp_ros_common are the project's own packages.
    install_requires=["setuptools", "numpy", "onnxruntime"],
    zip_safe=True,
    description="Policy node: runs an exported CDP/DP ONNX sampler at the control rate.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["policy_node = cdp_policy.node:main"]},
)
