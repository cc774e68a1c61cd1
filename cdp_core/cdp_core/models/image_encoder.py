"""Image observation encoders (Diffusion Policy's visuomotor recipe): uint8 frames -> features.

``images`` uint8 ``[B, To, cameras, H, W, 3]`` (RGB, HWC as cameras deliver them) -> ``[B, To *
cameras * F]``. Per camera one backbone (shared over the observation steps): crop (random while
training, centre at inference, as DP does), ImageNet normalisation, a CNN with GroupNorm (batch
statistics would differ between a 256-window training batch and one observation at run time),
a spatial softmax (expected 2-D position of each feature map: what a precision task needs is
*where* things are) and a linear layer. Everything is in the exported ONNX graph.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // 16), channels)


class SpatialSoftmax(nn.Module):
    """``[N, K, h, w]`` feature maps -> ``[N, 2K]`` expected (x, y) in [-1, 1] of each map."""

    grid: torch.Tensor

    def __init__(self, h: int, w: int):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))  # [h*w, 2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k = x.shape[:2]
        attn = torch.softmax(x.reshape(n, k, -1), dim=-1)
        return (attn @ self.grid).reshape(n, 2 * k)


class SmallCNN(nn.Module):
    """Three strided 3x3 convolutions with GroupNorm: cheap enough to train on a CPU."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.out_channels = channels
        layers: list[nn.Module] = []
        cin = 3
        for cout, stride in ((32, 2), (channels, 2), (channels, 1)):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), _gn(cout), nn.Mish()]
            cin = cout
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _gn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _gn(cout)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _gn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18GN(nn.Module):
    """ResNet-18 with every BatchNorm replaced by GroupNorm, without its pooling and classifier head.

    Parameter names follow torchvision's ``resnet18`` (``conv1``, ``layer1.0.conv1``, ...), so a
    local torchvision state dict loads its convolution weights (norm layers differ in kind).
    """

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = 512
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = _gn(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (cout, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            setattr(self, f"layer{i}", nn.Sequential(_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)))
            cin = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x


def build_backbone(name: str) -> SmallCNN | ResNet18GN:
    if name == "cnn":
        return SmallCNN()
    if name == "resnet18":
        return ResNet18GN()
    raise ValueError(f"unknown image encoder {name!r} (known: cnn, resnet18)")


class CameraEncoder(nn.Module):
    """One camera's frames ``[N, 3, h, w]`` (float, normalised, cropped) -> ``[N, F]``."""

    def __init__(self, backbone: str, crop_hw: tuple[int, int], feature_dim: int):
        super().__init__()
        self.backbone: SmallCNN | ResNet18GN = build_backbone(backbone)
        with torch.no_grad():
            fh, fw = self.backbone(torch.zeros(1, 3, *crop_hw)).shape[-2:]
        self.pool = SpatialSoftmax(int(fh), int(fw))
        self.proj = nn.Linear(2 * self.backbone.out_channels, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.backbone(x)))


class ImageObsEncoder(nn.Module):
    """``images`` uint8 ``[B, To, C, H, W, 3]`` -> ``[B, To * C * feature_dim]``, one encoder per camera."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, cameras: list[str], image_size: tuple[int, int], backbone: str, feature_dim: int, crop: float):
        super().__init__()
        self.cameras = list(cameras)
        h, w = image_size
        self.crop_hw = (max(8, int(round(h * crop))), max(8, int(round(w * crop))))
        self.image_size = (h, w)
        self.encoders = nn.ModuleList(CameraEncoder(backbone, self.crop_hw, feature_dim) for _ in self.cameras)
        self._encoders: list[CameraEncoder] = list(self.encoders)  # type: ignore[arg-type]  # (typed view)
        self.feature_dim = feature_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def out_dim(self, n_obs_steps: int) -> int:
        return n_obs_steps * len(self.cameras) * self.feature_dim

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` -> ``[N, 3, ch, cw]``: a random window per frame in training, the centre otherwise."""
        (h, w), (ch, cw) = self.image_size, self.crop_hw
        if not self.training:
            t0, l0 = (h - ch) // 2, (w - cw) // 2
            return x[:, :, t0 : t0 + ch, l0 : l0 + cw]
        n = x.shape[0]
        top = torch.randint(0, h - ch + 1, (n,), device=x.device)
        left = torch.randint(0, w - cw + 1, (n,), device=x.device)
        rows = (top[:, None] + torch.arange(ch, device=x.device)[None, :])[:, :, None]  # [N, ch, 1]
        cols = (left[:, None] + torch.arange(cw, device=x.device)[None, :])[:, None, :]  # [N, 1, cw]
        batch = torch.arange(n, device=x.device)[:, None, None]
        return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, to, c = images.shape[:3]
        x = images.to(self.mean.dtype).permute(0, 1, 2, 5, 3, 4) / 255.0  # [B, To, C, 3, H, W]
        feats = []
        for i, enc in enumerate(self._encoders):
            frames = self.crop(x[:, :, i].reshape(b * to, 3, *self.image_size))
            feats.append(enc((frames - self.mean) / self.std).reshape(b, to, -1))
        return torch.cat(feats, dim=-1).reshape(b, -1)

    def load_backbone_weights(self, path: str | Path) -> list[str]:
        """Load a local state dict into every camera's backbone; returns the parameter names it lacked."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"model.image_weights: no such file: {p}")
        state = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"model.image_weights: {p} holds no state dict")
        missing: list[str] = []
        for enc in self._encoders:
            own = enc.backbone.state_dict()
            fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if not fit:
                raise ValueError(f"model.image_weights: no tensor of {p} fits the {type(enc.backbone).__name__}")
            missing = sorted(set(own) - set(fit))
            enc.backbone.load_state_dict(fit, strict=False)
        return missing
