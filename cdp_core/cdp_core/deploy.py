"""Will this model run here? The one deployability check of an exported model's metadata.

The policy node (before it serves a model), ``cdp-preflight`` (before anything moves) and the
evaluation protocol (before its first trial) all ask the same question with the same function,
so a model cannot pass one and be refused by another. What the stack can serve is data,
:class:`StackCapabilities` (the policy node publishes its own, built from its observation table);
what the task needs comes from the task definition. torch-free and ROS-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .runtime import ModelContractError
from .observation import with_derived_dims


@dataclass(frozen=True)
class StackCapabilities:
    """What a consumer can serve: observation keys it can build (with their sizes) and action spaces."""

    obs_dims: Mapping[str, int] = field(default_factory=dict)
    action_spaces: tuple[str, ...] = ("joint_position",)
    action_dim: int = 7
    #: Cameras it can deliver frames of, with their frame size (H, W); image policies need theirs.
    cameras: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: Who this is (for messages): "policy node", "fast path", ...
    name: str = "the stack"


def deployment_problems(meta: Mapping[str, Any], capabilities: StackCapabilities, task: Any = None) -> list[str]:
    """Every reason ``meta`` (an exported model's metadata) cannot run on ``capabilities`` for ``task``.

    ``task``: a :class:`cdp_core.sim.tasks.Task` (its observations, action size and rate), or None
    when the consumer does not know the task (the policy node alone).
    """
    problems: list[str] = []
    keys = list(meta.get("obs_keys", []))
    dims = dict(meta.get("obs_dims", {}))
    cap = capabilities
    unknown = [k for k in keys if k not in cap.obs_dims]
    if unknown:
        problems.append(f"model observes {unknown}, which {cap.name} cannot build; it builds {sorted(cap.obs_dims)}")
    wrong = [
        f"{k} (model {dims.get(k)}, {cap.name} {cap.obs_dims[k]})"
        for k in keys
        if k in cap.obs_dims and dims.get(k) != cap.obs_dims[k]
    ]
    if wrong:
        problems.append(f"observation sizes differ: {', '.join(wrong)}")
    cams = list(meta.get("cameras") or [])
    absent = [c for c in cams if c not in cap.cameras]
    if absent:
        has = sorted(cap.cameras) or "no camera frames"
        problems.append(f"model sees cameras {absent}, which {cap.name} does not deliver (it has {has})")
    size = tuple(meta.get("image_size") or ())
    odd = [f"{c} ({list(cap.cameras[c])})" for c in cams if c in cap.cameras and tuple(cap.cameras[c]) != size]
    if odd:
        problems.append(f"model takes {list(size)} frames; {cap.name} delivers {', '.join(odd)}")
    if meta.get("action_dim") != cap.action_dim:
        problems.append(f"model has action_dim {meta.get('action_dim')}, {cap.name} sends {cap.action_dim}")
    space = meta.get("action_space", "joint_position")
    if space not in cap.action_spaces:
        problems.append(f"model's action space is {space!r}; {cap.name} executes {', '.join(cap.action_spaces)}")
    if task is not None:
        spec = task.spec
        task_dims = with_derived_dims(spec.obs_dims)
        missing = [k for k in keys if k not in task_dims and k not in unknown]
        if missing:
            problems.append(f"model observes {missing}, which task {spec.name} does not provide")
        task_wrong = [
            k
            for k in keys
            if k in task_dims
            and task_dims[k] != dims.get(k)
            and not (k in cap.obs_dims and dims.get(k) != cap.obs_dims[k])
        ]
        if task_wrong:
            problems.append(f"observation dims differ from task {spec.name} for {task_wrong}")
        rate = meta.get("rate_hz")
        if rate is not None and abs(float(rate) - spec.control_hz) > 1e-6:
            problems.append(f"model was trained at {rate} Hz, task {spec.name} runs at {spec.control_hz} Hz")
    return problems


def check_deployable(
    meta: Mapping[str, Any], capabilities: StackCapabilities, task: Any = None, source: str = "model"
) -> None:
    """Raise :class:`ModelContractError` listing every problem of :func:`deployment_problems`."""
    problems = deployment_problems(meta, capabilities, task)
    if problems:
        what = f"does not fit task {task.spec.name} on" if task is not None else "cannot run on"
        raise ModelContractError(f"{source} {what} {capabilities.name}: " + "; ".join(problems))
