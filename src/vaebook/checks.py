"""Input checks done once, at the entry of public functions, with errors that name the fix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def check_images(
    x: Tensor, image_shape: Sequence[int], unit_range: bool = True, name: str = "x"
) -> None:
    """Raise a ValueError unless x is a float batch (B, *image_shape), finite, in [0, 1] if asked.

    image_shape: (C, H, W), e.g. (1, 28, 28) for MNIST or (3, 64, 64) for Sprites.
    """
    expected = tuple(image_shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, {expected}), got {type(x)}")
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        hint = ""
        if x.dim() == len(expected) and tuple(x.shape) == expected:
            hint = " (a single image: add the batch dimension with x.unsqueeze(0))"
        elif x.dim() == 2 and x.shape[1] == torch.Size(expected).numel():
            hint = f" (flat vectors: reshape with x.view(-1, *{expected}))"
        raise ValueError(
            f"{name} must have shape (B, {', '.join(map(str, expected))}), "
            f"got {tuple(x.shape)}{hint}"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor, got {x.dtype}; for uint8 images use x.float() / 255"
        )
    if not x.numel():
        return
    # one pass: min and max propagate NaN, and an infinite value is the min or the max
    low, high = torch.stack(torch.aminmax(x)).tolist()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values; clean the data first")
    if unit_range and (low < 0 or high > 1):
        raise ValueError(
            f"{name} must lie in [0, 1] for a Bernoulli decoder, got values in "
            f"[{low:.3g}, {high:.3g}]; rescale (x / 255 for 8-bit images) "
            "or use likelihood='gaussian'"
        )
