"""Figures used across chapters. Each function returns a matplotlib Figure and draws nothing
else, so a notebook shows it and a script saves it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor


def _grid(images: Tensor, nrow: int) -> Tensor:
    """images (B, C, H, W) in [0, 1] -> one (H', W', C) array tiled nrow images per row."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1)
    return grid.permute(1, 2, 0).numpy()


def image_grid(
    images: Tensor, nrow: int = 10, title: str | None = None, scale: float = 0.6
) -> Figure:
    """Tile images (B, C, H, W) in [0, 1], nrow per row."""
    grid = _grid(images, nrow)
    rows = -(-len(images) // nrow)
    fig, ax = plt.subplots(figsize=(scale * min(nrow, len(images)), scale * rows + 0.4))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def reconstruction_pairs(originals: Tensor, reconstructions: Tensor, n: int = 10) -> Figure:
    """Originals in the top row, their reconstructions below: two (B, C, H, W) in [0, 1]."""
    n = min(n, len(originals))
    pairs = torch.cat([originals[:n].cpu(), reconstructions[:n].cpu()])
    return image_grid(pairs, nrow=n, title="top: data, bottom: reconstruction")


def sample_grid(samples: Tensor, nrow: int = 10) -> Figure:
    """Samples from the model (B, C, H, W) in [0, 1]."""
    return image_grid(samples, nrow=nrow, title="samples from the prior")


def loss_curves(
    history: Mapping[str, Sequence[float]], terms: Sequence[str] | None = None
) -> Figure:
    """One panel per loss term, per epoch; a term's test_ curve shares its panel."""
    terms = terms or [k for k in history if not k.startswith("test_") and k != "seconds"]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        epochs = range(1, len(history[term]) + 1)
        ax.plot(epochs, history[term], marker=".", label="train")
        if f"test_{term}" in history:
            ax.plot(epochs, history[f"test_{term}"], marker=".", label="test")
            ax.legend()
        ax.set_xlabel("epoch")
        ax.set_title(term)
    fig.tight_layout()
    return fig


def latent_scatter(codes: Tensor, labels: Tensor | None = None, title: str = "") -> Figure:
    """Scatter 2-D codes (N, 2), coloured by label (N,) if given."""
    codes = codes.detach().cpu()
    if codes.dim() != 2 or codes.shape[1] != 2:
        raise ValueError(
            f"latent_scatter needs (N, 2) codes; got {tuple(codes.shape)} (use PCA or t-SNE first)"
        )
    fig, ax = plt.subplots(figsize=(5, 4.5))
    colours = None if labels is None else labels.cpu().numpy()
    points = ax.scatter(
        codes[:, 0].numpy(), codes[:, 1].numpy(), c=colours, cmap="tab10", s=3, alpha=0.7
    )
    if labels is not None:
        fig.colorbar(points, ax=ax, label="label")
    ax.set_title(title)
    fig.tight_layout()
    return fig
