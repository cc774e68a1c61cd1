"""Every project package a ROS package imports is declared in its package.xml (colcon orders the
build and ros2 run finds it by that), and cdp_bringup declares every node its graph starts."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

SRC = Path(__file__).resolve().parents[1] / "ros2_ws" / "src"
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "package.xml").is_file())
PROJECT = set(PACKAGES) | {"cdp_core"}


def exec_depends(pkg: str) -> set[str]:
    root = ET.parse(SRC / pkg / "package.xml").getroot()
    return {e.text.strip() for e in root if e.tag in ("exec_depend", "depend") and e.text}


def imported_project_packages(pkg: str) -> set[str]:
    found: set[str] = set()
    for path in (SRC / pkg / pkg).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return (found & PROJECT) - {pkg}


@pytest.mark.parametrize("pkg", PACKAGES)
def test_imports_are_declared(pkg):
    missing = imported_project_packages(pkg) - exec_depends(pkg)
    assert not missing, f"{pkg} imports {sorted(missing)} without <exec_depend> in its package.xml"


def test_bringup_declares_every_node_package_of_its_graph():
    graph = yaml.safe_load((SRC.parents[1] / "launch" / "graph.yaml").read_text())
    used = {n["package"] for n in graph["nodes"]} - {"cdp_bringup"}  # its own nodes need no declaration
    missing = used - exec_depends("cdp_bringup")
    assert not missing, f"graph.yaml starts nodes from {sorted(missing)}, not declared by cdp_bringup"
