import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.figure import Figure

from vaebook import plots


def test_every_plot_returns_a_figure():
    gray, rgb = torch.rand(12, 1, 28, 28), torch.rand(4, 3, 64, 64)
    figures = [
        plots.image_grid(gray, nrow=6),
        plots.image_grid(rgb, nrow=2),
        plots.reconstruction_pairs(gray, gray),
        plots.sample_grid(gray),
        plots.loss_curves(
            {"total": [3, 2, 1], "kl": [1, 1, 1], "test_total": [3, 2, 2], "seconds": [1, 1, 1]}
        ),
        plots.latent_scatter(torch.randn(50, 2), torch.randint(0, 10, (50,))),
    ]
    assert all(isinstance(f, Figure) for f in figures)
    assert len(figures[4].axes) == 2  # total and kl; seconds and test_ curves share no panel


def test_latent_scatter_needs_two_dimensions():
    with pytest.raises(ValueError, match="t-SNE"):
        plots.latent_scatter(torch.randn(10, 5))
