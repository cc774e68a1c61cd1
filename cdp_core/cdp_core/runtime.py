"""Run an exported policy with ONNX Runtime, after checking its metadata contract.

This is what deployment code (the ROS policy node, evaluators) loads. It refuses to start
on a missing or corrupt file, a model without CDP metadata, an ONNX graph whose metadata
disagrees with its sidecar JSON, or a model whose observations / actions / horizons
differ from what the consumer was configured for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .model_format import FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, sidecar_path

#: Metadata fields a consumer may pin; anything else in ``expect`` is a programming error.
CONTRACT_KEYS = (
    "obs_keys",
    "obs_dims",
    "obs_dim",
    "action_names",
    "action_dim",
    "action_space",
    "n_obs_steps",
    "horizon",
    "n_action_steps",
    "action_start_index",
    "sampler",
    "steps",
    "rate_hz",
)


class ModelContractError(RuntimeError):
    """An exported model cannot be used: missing, corrupt, or not what the consumer expects."""


#: The one provider order of the project (policy node, evaluators, preflight): TensorRT, then CUDA,
#: then CPU, whichever this ONNX Runtime build has.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def preferred_providers(available: list[str], preference: tuple[str, ...] | list[str] = PROVIDER_ORDER) -> list[str]:
    """The providers of ``preference`` this ONNX Runtime has, in that order; an error names what is missing."""
    chosen = [p for p in preference if p in available]
    if not chosen:
        raise ModelContractError(
            f"none of the providers {list(preference)} is available in this ONNX Runtime build (available: {available})"
        )
    return chosen


class OnnxPolicy:
    """An exported fixed-step sampler: ``__call__(obs [B, To, obs_dim], noise=None, images=None) -> actions [B, H, A]``.

    An image policy (metadata ``cameras``) also takes ``images`` uint8 ``[B, To, cameras, H, W, 3]``.
    """

    def __init__(
        self,
        path: str | Path,
        expect: dict[str, Any] | None = None,
        providers: list[str] | None = None,
        intra_op_threads: int = 0,
        seed: int | None = None,
    ):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelContractError(f"model file not found: {self.path}")
        opts = ort.SessionOptions()
        if intra_op_threads:
            opts.intra_op_num_threads = intra_op_threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=providers or preferred_providers(ort.get_available_providers())
            )
        except Exception as exc:  # ORT raises its own exception types for truncated / invalid graphs
            raise ModelContractError(
                f"{self.path}: corrupt or not an ONNX model ({type(exc).__name__}: {exc})"
            ) from exc
        self.metadata = self._read_metadata()
        if expect:
            check_contract(self.metadata, expect, str(self.path))
        m = self.metadata
        self.noise_shape = (m["horizon"], m["action_dim"])
        self.obs_shape = (m["n_obs_steps"], m["obs_dim"])
        self.cameras: list[str] = list(m.get("cameras") or [])
        self.images_shape: tuple[int, ...] | None = (
            (m["n_obs_steps"], len(self.cameras), *m["image_size"], 3) if self.cameras else None
        )
        self.providers = self.session.get_providers()
        self.rng = np.random.default_rng(seed)

    def _read_metadata(self) -> dict[str, Any]:
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ModelContractError(f"{self.path}: no '{METADATA_KEY}' metadata: not exported by cdp_core")
        try:
            meta = json.loads(props[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise ModelContractError(f"{self.path}: metadata is not valid JSON ({exc})") from exc
        if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
            raise ModelContractError(
                f"{self.path}: metadata format {meta.get('format')!r} v{meta.get('version')} "
                f"is not {FORMAT_NAME!r} v{FORMAT_VERSION}"
            )
        side = sidecar_path(self.path)
        if side.exists():
            try:
                sidecar = json.loads(side.read_text())
            except json.JSONDecodeError as exc:
                raise ModelContractError(f"{side}: sidecar metadata is not valid JSON ({exc})") from exc
            differ = sorted(k for k in set(meta) | set(sidecar) if meta.get(k) != sidecar.get(k))
            if differ:
                raise ModelContractError(
                    f"{side}: sidecar metadata disagrees with the model in {differ}; "
                    "the two files are from different exports"
                )
        meta.setdefault("action_space", "joint_position")  # exports from before the option had joint targets only
        return meta

    def __call__(
        self, obs: np.ndarray, noise: np.ndarray | None = None, images: np.ndarray | None = None
    ) -> np.ndarray:
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        if obs.ndim != 3 or obs.shape[1:] != self.obs_shape:
            raise ValueError(f"obs must have shape [B, {self.obs_shape[0]}, {self.obs_shape[1]}], got {obs.shape}")
        if not np.isfinite(obs).all():
            raise ValueError("obs holds NaN or inf")
        if noise is None:
            noise = self.rng.standard_normal((obs.shape[0], *self.noise_shape), dtype=np.float32)
        noise = np.ascontiguousarray(noise, dtype=np.float32)
        if noise.shape != (obs.shape[0], *self.noise_shape):
            raise ValueError(
                f"noise must have shape [{obs.shape[0]}, {self.noise_shape[0]}, {self.noise_shape[1]}], "
                f"got {noise.shape}"
            )
        feeds = {"obs": obs, "noise": noise}
        if self.images_shape is not None:
            if images is None:
                raise ValueError(f"this is an image policy (cameras {self.cameras}): pass images")
            expect = (obs.shape[0], *self.images_shape)
            if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape != expect:
                got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
                raise ValueError(f"images must be uint8 {list(expect)} (cameras {self.cameras}, RGB), got {got}")
            feeds["images"] = np.ascontiguousarray(images)
        elif images is not None:
            raise ValueError("this model takes no images (it has no cameras)")
        return self.session.run(["actions"], feeds)[0]


def check_contract(meta: dict[str, Any], expect: dict[str, Any], where: str = "model") -> None:
    """Raise ModelContractError listing every field where ``meta`` differs from ``expect``."""
    unknown = sorted(set(expect) - set(CONTRACT_KEYS))
    if unknown:
        raise ValueError(f"cannot check unknown contract fields {unknown}; known: {list(CONTRACT_KEYS)}")
    problems = [f"{k}: model has {meta.get(k)!r}, expected {v!r}" for k, v in expect.items() if meta.get(k) != v]
    if problems:
        raise ModelContractError(f"{where} does not match the configured policy: " + "; ".join(problems))
