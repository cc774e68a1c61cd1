"""The node graph described by ``launch/graph.yaml``, resolved for given launch arguments.

Both launchers use this module: ``manipulation.launch.py`` (ros2 launch, launch_ros ``Node``
actions) and ``cdp-graph`` (one process per node where ROS 2 launch is not installed), so the
two start the same nodes with the same parameter files and overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class GraphError(ValueError):
    """graph.yaml is malformed, or a launch argument is unknown or has a bad value."""


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what to run and with which parameters."""

    name: str
    package: str
    executable: str
    module: str
    required: bool
    start_delay_s: float
    params_files: tuple[str, ...]
    overrides: dict[str, str] = field(default_factory=dict)

    def typed_overrides(self) -> dict[str, Any]:
        """The overrides with YAML typing, as rcl reads ``-p name:=value`` (``"0.06"`` -> 0.06) for launch_ros."""
        return {k: yaml.safe_load(v) if v != "" else v for k, v in self.overrides.items()}

    def parameters(self) -> dict[str, Any]:
        """The parameters this node starts with: its params files in order, then the overrides."""
        params: dict[str, Any] = {}
        for f in self.params_files:
            with open(f) as fh:
                data = yaml.safe_load(fh) or {}
            params.update((data.get(self.name) or {}).get("ros__parameters") or {})
        params.update(self.typed_overrides())
        return params

    def ros_args(self) -> list[str]:
        """The ``--ros-args`` part of the node's command line."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        for f in self.params_files:
            args += ["--params-file", f]
        for k, v in self.overrides.items():
            args += ["-p", f"{k}:={v}"]
        return args


def default_graph_path() -> Path:
    """The graph in this source checkout's ``launch/``, else the installed share/cdp_bringup/launch."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "launch" / "graph.yaml"
        if candidate.is_file() and (parent / "ros2_ws").is_dir():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("cdp_bringup")) / "launch" / "graph.yaml"
    except Exception as exc:  # PackageNotFoundError or no ament index at all
        raise GraphError(f"cannot find launch/graph.yaml next to {here} or in an ament index ({exc})") from exc


def load_graph(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check graph.yaml."""
    p = Path(path) if path else default_graph_path()
    try:
        graph = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise GraphError(f"cannot read node graph {p}: {exc}") from exc
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise GraphError(f"{p}: expected a mapping with a 'nodes' list")
    for key in ("arguments", "params_files"):
        if not isinstance(graph.get(key, {}), dict):
            raise GraphError(f"{p}: '{key}' must be a mapping")
    for i, n in enumerate(graph["nodes"]):
        missing = [k for k in ("name", "package", "executable", "module") if k not in n]
        if missing:
            raise GraphError(f"{p}: node {i} lacks {missing}")
    graph["_path"] = str(p)
    return graph


def parse_bool(name: str, value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise GraphError(f"launch argument {name}:={value!r} must be true or false")


def condition_holds(expr: str, args: dict[str, str], where: str) -> bool:
    """``"use_sim"``, ``"not use_sim"``, ``"use_sim and use_perception"``: boolean launch arguments only."""
    result = True
    for term in str(expr).split(" and "):
        words = term.split()
        negate = len(words) == 2 and words[0] == "not"
        if not words or len(words) > 2 or (len(words) == 2 and not negate):
            raise GraphError(f"{where}: cannot read condition {expr!r} (use 'a', 'not a', 'a and not b')")
        name = words[-1]
        if name not in args:
            raise GraphError(f"{where}: condition {expr!r} names {name!r}, which is not a launch argument")
        result = result and (parse_bool(name, args[name]) != negate)
    return result


def resolve_arguments(graph: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Defaults overlaid with ``given``; an unknown argument is an error listing the known ones."""
    declared = graph.get("arguments", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise GraphError(f"unknown launch argument(s) {unknown}; known: {sorted(declared)}")
    out = {k: str(given.get(k, spec.get("default", ""))) for k, spec in declared.items()}
    for k, spec in declared.items():
        # File arguments are resolved against the caller's working directory here, once, so every
        # node (whatever its own working directory) gets the same absolute path.
        if spec.get("path") and out[k]:
            out[k] = str(Path(out[k]).expanduser().resolve())
    return out


#: Arguments derived from the model's metadata (its JSON sidecar), never given on the command line:
#: the graph starts what the model needs (``when: use_sim and model_cameras``).
MODEL_ARGUMENTS = ("model_cameras",)


def model_metadata(path: str) -> dict[str, Any]:
    """The exported model's metadata from its sidecar (cheap: no ONNX load); {} when there is none.
    The policy node checks the model itself at start-up and refuses what does not fit."""
    import json

    from cdp_core.model_format import sidecar_path

    if not path:
        return {}
    side = sidecar_path(path)
    try:
        return dict(json.loads(side.read_text()))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise GraphError(f"model sidecar {side} is unreadable ({type(exc).__name__}: {exc})") from exc


def model_arguments(meta: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Derived arguments and node overrides for a model: an image policy gets its simulated
    cameras at its frame size and control rate."""
    cams = [str(c) for c in meta.get("cameras") or []]
    args = {"model_cameras": "true" if cams else "false"}
    overrides: dict[str, dict[str, str]] = {}
    if cams:
        size = [int(v) for v in meta.get("image_size") or []]
        if len(size) != 2:
            raise GraphError(f"the model sees cameras {cams} but its metadata has no image_size")
        overrides["agentview_camera"] = {"cameras": yaml.safe_dump(cams, default_flow_style=True).strip()}
        overrides["agentview_camera"]["image_size"] = yaml.safe_dump(size, default_flow_style=True).strip()
        if meta.get("rate_hz"):
            overrides["agentview_camera"]["rate_hz"] = str(float(meta["rate_hz"]))
    return args, overrides


def resolve(graph: dict[str, Any], given: dict[str, str]) -> list[NodeSpec]:
    """The nodes to start, in order, for launch arguments ``given`` (name -> string value)."""
    clash = sorted(set(given) & set(MODEL_ARGUMENTS))
    if clash:
        raise GraphError(f"{clash} come from the model's metadata and cannot be given")
    args = resolve_arguments(graph, given)
    derived, model_overrides = model_arguments(model_metadata(args.get("model", "")))
    args.update(derived)
    base = Path(graph["_path"]).parent
    files_by_cond = graph.get("params_files", {})
    files: list[str] = []
    for cond, paths in files_by_cond.items():
        if cond == "always" or condition_holds(cond, args, "params_files"):
            files += [str((base / f).resolve()) for f in paths]
    for f in files:
        if not Path(f).is_file():
            raise GraphError(f"parameter file {f} (named in {graph['_path']}) does not exist")
    overrides: dict[str, dict[str, str]] = {}
    for name, spec in graph.get("arguments", {}).items():
        for target in spec.get("sets", []) or []:
            node, _, param = target.partition(".")
            # an argument without a default sets nothing until it is given a value (ros2 launch passes
            # every declared argument, unset ones as "")
            if "default" in spec or given.get(name, "") != "":
                overrides.setdefault(node, {})[param] = args[name]
    for node, values in model_overrides.items():
        overrides.setdefault(node, {}).update(values)
    specs = []
    for n in graph["nodes"]:
        cond = n.get("when")
        if cond is not None and not condition_holds(cond, args, f"node {n['name']}"):
            continue
        specs.append(
            NodeSpec(
                name=n["name"],
                package=n["package"],
                executable=n["executable"],
                module=n["module"],
                required=bool(n.get("required", False)),
                start_delay_s=float(n.get("start_delay_s", 0.0)),
                params_files=tuple(files),
                overrides=overrides.get(n["name"], {}),
            )
        )
    return specs


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """``["use_sim:=true", "model:=m.onnx"]`` -> dict, as ``ros2 launch`` takes them."""
    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise GraphError(f"launch arguments look like name:=value, got {item!r}")
        out[name] = value
    return out
