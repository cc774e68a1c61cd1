from setuptools import find_packages, setup

PACKAGE = "cdp_eval"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy", "pyyaml", "matplotlib"],
    zip_safe=True,
    description="Paired policy evaluation protocols on the FR3 (simulated or real): runner, resumable results, report.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "cdp-eval-protocol = cdp_eval.run:main",
            "cdp-eval-report = cdp_eval.report:main",
        ],
    },
)
