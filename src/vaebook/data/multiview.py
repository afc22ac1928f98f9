"""Rows seen through several views: images per image view beside the other views of a
factor-analysis layer (labels, features), as FA-VAE trains on them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from vaebook import fa
from vaebook.checks import check_image_data
from vaebook.data.images import as_float_images


@dataclass
class FAVAEData:
    """N rows seen through several views: images per image view, and the other views of the
    factor-analysis layer (labels, features), row n of every view describing the same thing.

    images: view name -> (N, C, H, W) float in [0, 1] or uint8 in 0..255 (a quarter of the
    memory; batches are float in [0, 1]). side_views: view name -> a `vaebook.fa`
    view of the same N rows, e.g. `fa.Categorical(labels (N,))`, `fa.Multilabel((N, L))`,
    `fa.Real((N, D))`; a view holds its own fit, so give every model its own view objects.
    A batch is (index (B,), {image view: (B, C, H, W)}): the index picks each row's prior.
    """

    images: dict[str, Tensor]
    side_views: dict[str, fa.View] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.images, dict) or not self.images:
            raise ValueError(
                "give the images as a dict of at least one image view: "
                "images={'image': x (N, C, H, W)}"
            )
        if not isinstance(self.side_views, dict):
            raise ValueError(
                "give the side views as a dict name -> vaebook.fa view, e.g. "
                "side_views={'label': fa.Categorical(labels)}"
            )
        for name, x in self.images.items():
            # layout, dtype and range, one pass: uint8 0/1 images are refused (x.float())
            check_image_data(x, f"images[{name!r}]")
        rows = {name: len(x) for name, x in self.images.items()}
        for name, view in self.side_views.items():
            if not isinstance(view, fa.View):
                raise ValueError(
                    f"side view {name!r} is a {type(view).__name__}; wrap its data in a view of "
                    "vaebook.fa, e.g. fa.Categorical(labels) or fa.Real(features)"
                )
            rows[name] = view.data.shape[0]
        if len(set(rows.values())) > 1:
            raise ValueError(f"every view must have the same N rows, got {rows}")
        clash = set(self.images) & set(self.side_views)
        if clash:
            raise ValueError(f"names {sorted(clash)} are both image and side views; rename one")

    def __len__(self) -> int:
        return len(next(iter(self.images.values())))

    @property
    def device(self) -> torch.device:
        return next(iter(self.images.values())).device

    def to(self, device: str | torch.device) -> FAVAEData:
        """The images on `device`; side views are moved by the factor-analysis layer itself."""
        images = {name: x.to(device) for name, x in self.images.items()}
        return FAVAEData(images, self.side_views)

    def batch(
        self, index: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Rows `index` (B,): (index, {image view: (B, C, H, W) float in [0, 1]})."""
        return index, {name: as_float_images(x[index]) for name, x in self.images.items()}
