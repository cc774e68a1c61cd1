"""The exported-model format's constants, without torch: what deployment code needs to read a model."""

from __future__ import annotations

from pathlib import Path

#: ONNX metadata_props key holding the JSON contract (also written to a sidecar .json).
METADATA_KEY = "cdp_metadata"
FORMAT_NAME = "cdp-onnx"
FORMAT_VERSION = 1


def sidecar_path(onnx_path: str | Path) -> Path:
    """The JSON sidecar that travels with ``model.onnx``: ``model.json``."""
    return Path(onnx_path).with_suffix(".json")
