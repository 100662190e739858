"""A small conv stack with spatial-softmax keypoints: the image encoder robot learning uses
for few-shot pixels (robomimic's ``VisualCore``, Diffusion Policy's ResNet + spatial
softmax; Levine et al. 2016).

    image [B, 3, S, S] ──conv 3×3 /2, then 3× conv 3×3──► features [B, C, S/2, S/2]
                       ──1×1 conv──► K heat maps ──softmax over pixels──► K expected (x, y)

Each keypoint is where one learned feature fires, in [-1, 1] image coordinates: a small
object (the push puck is 2-3 pixels at 64 px) moves its keypoint by pixels, which a
16-pixel ViT patch cannot resolve. The keypoints become K image tokens for the decoder
(position + a learned embedding saying which keypoint), and their flattened coordinates
one pooled feature (robomimic's flatten + linear) for the auxiliary regression head.
"""

from __future__ import annotations

import torch
from torch import nn


class SpatialSoftmax(nn.Module):
    """[B, C, H, W] features -> [B, K, 2] expected keypoint positions (x, y) in [-1, 1]."""

    def __init__(self, channels: int, keypoints: int, height: int, width: int):
        super().__init__()
        self.heat_maps = nn.Conv2d(channels, keypoints, kernel_size=1)
        self.log_temperature = nn.Parameter(torch.zeros(()))  # learned sharpness of the softmax
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        heat = self.heat_maps(features).flatten(2)  # [B, K, H·W]
        attention = (heat / self.log_temperature.exp()).softmax(dim=-1)
        return attention @ self.grid  # [B, K, 2]


class ConvKeypointEncoder(nn.Module):
    """Pixels in [-1, 1] -> (K keypoint tokens [B, K, width], pooled feature [B, width])."""

    def __init__(self, image_size: int, channels: int, keypoints: int, width: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )
        side = (image_size + 1) // 2
        self.keypoints = SpatialSoftmax(channels, keypoints, side, side)
        self.position = nn.Linear(2, width)
        self.keypoint_embedding = nn.Parameter(torch.randn(keypoints, width) * 0.02)
        self.pool = nn.Linear(2 * keypoints, width)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = self.keypoints(self.convs(pixels))  # [B, K, 2]
        tokens = self.position(points) + self.keypoint_embedding
        return tokens, self.pool(points.flatten(1))
