"""Denoiser networks and observation encoders.

Every denoiser maps ``(x [B, H, A], t [B], cond [B, C]) -> [B, H, A]``.
"""

from .embeddings import SinusoidalTimeEmbedding
from .image_encoder import ImageObsEncoder
from .mlp import ResidualMLPDenoiser
from .obs_encoder import build_obs_encoder
from .unet1d import ConditionalUnet1D

__all__ = [
    "ConditionalUnet1D",
    "ImageObsEncoder",
    "ResidualMLPDenoiser",
    "SinusoidalTimeEmbedding",
    "build_obs_encoder",
]
