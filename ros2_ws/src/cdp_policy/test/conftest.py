"""Fixtures: a small FR3-shaped ONNX policy built once per session with the project's own tools."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_factory import make_fr3_model  # noqa: E402

REPO = Path(__file__).resolve().parents[4]
TOY_MODEL = REPO / "models" / "default" / "toy_cdp.onnx"


@pytest.fixture(scope="session")
def fr3_model(tmp_path_factory) -> Path:
    """reach_precise policy: obs_keys ee_pos, ee_quat, gripper_width, joint_pos, target_pos; To 2, H 8, n 4, 10 Hz."""
    return make_fr3_model(tmp_path_factory.mktemp("fr3_model"))


@pytest.fixture(scope="session")
def image_model(tmp_path_factory) -> Path:
    """reach_precise image policy: the agent-view camera at 32x32 plus the same low-dim keys."""
    return make_fr3_model(tmp_path_factory.mktemp("image_model"), cameras=("agentview",), image_size=32)
