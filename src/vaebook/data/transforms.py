"""Image transforms on batches (B, C, H, W): random affine copies for augmentation, and the
slant of handwriting and its removal (deskewing).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def random_affine(
    x: Tensor, pixels: float, degrees: float = 0.0, zoom: float = 0.0, shear: float = 0.0
) -> Tensor:
    """Each image moved by its own random translation of up to ``pixels`` in x and y, rotated by
    up to ``degrees`` either way, scaled by a factor in [1 - zoom, 1 + zoom] and slanted by a
    horizontal shear x -> x + k y with k in [-shear, shear] (bilinear, zeros shifted in):
    x (B, C, H, W) -> (B, C, H, W). Augmentations that keep the class of a digit or garment.
    Each move draws its numbers only when it is on, so turning one on leaves the others' draws."""
    b, _, h, w = x.shape
    if pixels < 0 or degrees < 0 or shear < 0 or not 0 <= zoom < 1:
        raise ValueError(
            "need pixels >= 0, degrees >= 0, shear >= 0 and 0 <= zoom < 1, "
            f"got {pixels}, {degrees}, {shear}, {zoom}"
        )
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size
    offsets = (torch.rand(b, 2, device=x.device, dtype=x.dtype) * 2 - 1) * pixels
    theta[:, 0, 2], theta[:, 1, 2] = offsets[:, 0] * 2 / w, offsets[:, 1] * 2 / h
    if degrees > 0 or zoom > 0:
        angle, scale = (torch.rand(2, b, device=x.device, dtype=x.dtype) * 2 - 1).unbind()
        angle, scale = angle * math.radians(degrees), 1 + scale * zoom
        # the grid maps output to input coordinates: the inverse of rotate-then-scale
        cos, sin = angle.cos() / scale, angle.sin() / scale
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    if shear > 0:
        # the handwriting slant: (input) = A [[1, k], [0, 1]] (output), k the shear
        k = (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * shear
        theta[:, :, 1] = theta[:, :, 1] + k.unsqueeze(1) * theta[:, :, 0]
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)


def _ink_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Centre row (B,) and slant (B,) of the ink of x (B, C, H, W); values below 0 (an
    adversarial perturbation's) are no ink and weigh nothing."""
    _, _, h, w = x.shape
    ink = x.clamp_min(0).sum(1)  # (B, H, W)
    mass = ink.sum((1, 2)).clamp_min(1e-8)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    row = (ink * rows).sum((1, 2)) / mass
    col = (ink * cols).sum((1, 2)) / mass
    d_row, d_col = rows - row.view(-1, 1, 1), cols - col.view(-1, 1, 1)
    slope = (ink * d_row * d_col).sum((1, 2)) / (ink * d_row**2).sum((1, 2)).clamp_min(1e-8)
    return row, slope


def slant(x: Tensor) -> Tensor:
    """The slant of each image, the regression slope of column on row over its ink (pixel
    values as weights; positive leans right going down): x (B, C, H, W) >= 0 -> (B,)."""
    return _ink_moments(x)[1]


def deskew(x: Tensor) -> Tensor:
    """Each image sheared horizontally about its centre of mass so that its ``slant`` becomes
    zero (the classic MNIST deskewing): x (B, C, H, W) >= 0 -> (B, C, H, W). Blank images pass
    through unchanged."""
    b, _, h, w = x.shape
    row, slope = _ink_moments(x)
    # output (r, c) reads input (r, c + slope (r - row)); in affine_grid's [-1, 1] coordinates
    # one pixel is 2 / size, so the slope scales by h / w and row becomes (2 row + 1) / h - 1
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 1] = slope * h / w
    theta[:, 0, 2] = -slope * h / w * ((2 * row + 1) / h - 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)
