"""The Cycle-Consistent VAE's encoder and decoder (Jha et al. 2018, arXiv 1804.10469): the
authors' architecture for 28x28x1 images (and ours for 64x64x3), InstanceNorm with running
statistics (RunningInstanceNorm2d, with a choice of what it does in eval mode), and the loader of
the weights the authors released (load_authors_cyclevae).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from vaebook.nets import _check_conv_shape

NORM_MODES = ("per-image", "running")


class RunningInstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm2d with running statistics (no affine weights), as in Jha et al.'s networks,
    with a choice for eval mode. Training normalises each image by its own statistics and updates
    the running ones; in eval mode ``per_image=True`` keeps normalising each image by its own
    statistics (the mode that reproduces the authors' numbers) and ``False`` uses the running
    statistics. x: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, per_image: bool = True):
        super().__init__(channels, track_running_stats=True)
        self.per_image = per_image

    def forward(self, x: Tensor) -> Tensor:
        if self.training or not self.per_image:
            return super().forward(x)
        return nn.functional.instance_norm(x, eps=self.eps)


def set_norm_mode(module: nn.Module, mode: str) -> None:
    """Make every RunningInstanceNorm2d inside ``module`` use ``mode`` in eval mode:
    'per-image' (each image's own statistics) or 'running' (the running statistics)."""
    if mode not in NORM_MODES:
        raise ValueError(f"norm mode must be one of {NORM_MODES}, got {mode!r}")
    for layer in module.modules():
        if isinstance(layer, RunningInstanceNorm2d):
            layer.per_image = mode == "per-image"


def cycle_conv_features(image_shape: Sequence[int]) -> nn.Sequential:
    """Convolutions, each with RunningInstanceNorm2d and ReLU, to 64 x 2 x 2 = 256 features.
    28x28x1: three 5x5 stride-2 convolutions (padding 1) 1 -> 16 -> 32 -> 64 (the authors');
    64x64x3: five 4x4 stride-2 convolutions (padding 1) 3 -> 32 -> 64 -> 128 -> 128 -> 64 (ours)."""
    shape = _check_conv_shape(image_shape)
    kernel, channels = (
        (5, [1, 16, 32, 64]) if shape[1] == 28 else (4, [shape[0], 32, 64, 128, 128, 64])
    )
    layers: dict[str, nn.Module] = {}
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True), start=1):
        layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel, stride=2, padding=1)
        layers[f"norm{i}"] = RunningInstanceNorm2d(c_out)
        layers[f"relu{i}"] = nn.ReLU()
    layers["flatten"] = nn.Flatten()
    return nn.Sequential(OrderedDict(layers))


def authors_init(module: nn.Module) -> None:
    """Jha et al.'s initialisation: N(0, 0.05^2) weights and zero biases for Conv2d and Linear
    layers (transposed convolutions keep PyTorch's default, as in their code)."""
    for layer in module.modules():
        if type(layer) in (nn.Conv2d, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, 0.05)
            nn.init.zeros_(layer.bias)


class CycleEncoder(nn.Module):
    """x (B, C, H, W) -> the unspecified latent's mean and log-variance (B, unspecified_dim) and
    the specified latent s (B, specified_dim), from 256 convolutional features (see
    cycle_conv_features); linear heads, as in Jha et al. 2018."""

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        unspecified_dim: int = 16,
        specified_dim: int = 16,
        norm_mode: str = "per-image",
    ):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.features = cycle_conv_features(image_shape)
        self.unspecified_mean = nn.Linear(256, unspecified_dim)
        self.unspecified_logvar = nn.Linear(256, unspecified_dim)
        self.specified = nn.Linear(256, specified_dim)
        authors_init(self)
        set_norm_mode(self, norm_mode)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.heads(self.features(x))

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """h: (B, 256) convolutional features -> mean, log-variance of z and s."""
        return self.unspecified_mean(h), self.unspecified_logvar(h), self.specified(h)


class CycleDecoder(nn.Module):
    """(z (B, unspecified_dim), s (B, specified_dim)) -> images (B, C, H, W) in [0, 1].

    Each code goes through Linear(., 256) and LeakyReLU 0.2; the 512 values, as 128 x 2 x 2,
    go through 4x4 stride-2 transposed convolutions with RunningInstanceNorm2d and LeakyReLU 0.2,
    then a sigmoid. 28x28x1: 128 -> 32 -> 16 -> 1, padding 0, 0, 1 (the authors');
    64x64x3: 128 -> 128 -> 64 -> 32 -> 16 -> 3, padding 1 (ours).
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        unspecified_dim: int = 16,
        specified_dim: int = 16,
        norm_mode: str = "per-image",
    ):
        super().__init__()
        shape = _check_conv_shape(image_shape)
        if shape[1] == 28:
            channels, paddings = [128, 32, 16, 1], [0, 0, 1]
        else:
            channels, paddings = [128, 128, 64, 32, 16, shape[0]], [1] * 5
        self.unspecified_input = nn.Linear(unspecified_dim, 256)
        self.specified_input = nn.Linear(specified_dim, 256)
        layers: dict[str, nn.Module] = {"unflatten": nn.Unflatten(1, (128, 2, 2))}
        pairs = list(zip(channels[:-1], channels[1:], paddings, strict=True))
        for i, (c_in, c_out, padding) in enumerate(pairs, start=1):
            layers[f"deconv{i}"] = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=padding)
            if i < len(pairs):
                layers[f"norm{i}"] = RunningInstanceNorm2d(c_out)
                layers[f"relu{i}"] = nn.LeakyReLU(0.2)
        layers["sigmoid"] = nn.Sigmoid()
        self.net = nn.Sequential(OrderedDict(layers))
        authors_init(self)
        set_norm_mode(self, norm_mode)

    def forward(self, z: Tensor, s: Tensor) -> Tensor:
        unspecified = nn.functional.leaky_relu(self.unspecified_input(z), 0.2)
        specified = nn.functional.leaky_relu(self.specified_input(s), 0.2)
        return self.net(torch.cat([unspecified, specified], dim=1))


# the authors' checkpoint names -> ours (their later code says style/class for varying/common)
AUTHORS_KEY_NAMES = {
    "encoder": (
        (r"^conv_model\.convolution_(\d)_in\.", r"features.norm\1."),
        (r"^conv_model\.convolution_(\d)\.", r"features.conv\1."),
        (r"^varying_factor_mu\.", "unspecified_mean."),
        (r"^varying_factor_logvar\.", "unspecified_logvar."),
        (r"^common_factor\.", "specified."),
    ),
    "decoder": (
        (r"^deconv_model\.deconvolution_(\d)_in\.", r"net.norm\1."),
        (r"^deconv_model\.deconvolution_(\d)\.", r"net.deconv\1."),
        (r"^varying_factor\.", "unspecified_input."),
        (r"^common_factor\.", "specified_input."),
    ),
}


def rename_authors_keys(state: dict[str, Tensor], net: str) -> dict[str, Tensor]:
    """A state dict saved by Jha et al.'s code (PyTorch 0.4 names) with our names; net is
    'encoder' or 'decoder'."""
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in AUTHORS_KEY_NAMES[net]:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


def load_authors_cyclevae(
    folder: str | Path, norm_mode: str = "per-image"
) -> tuple[CycleEncoder, CycleDecoder]:
    """The 28x28 CycleEncoder and CycleDecoder with the weights Jha et al. released
    (``folder/encoder.pt``, ``folder/decoder.pt``, MNIST, 16/16 dimensions), in eval mode."""
    folder = Path(folder)
    paths = {"encoder": folder / "encoder.pt", "decoder": folder / "decoder.pt"}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"no authors' checkpoint at {missing}; the folder must hold encoder.pt and "
            "decoder.pt from github.com/ananyahjha93/cycle-consistent-vae (checkpoints/)"
        )
    nets = {
        "encoder": CycleEncoder(norm_mode=norm_mode),
        "decoder": CycleDecoder(norm_mode=norm_mode),
    }
    for name, net in nets.items():
        state = torch.load(paths[name], map_location="cpu", weights_only=True)
        state = rename_authors_keys(state, name)
        # PyTorch 0.4 saved no num_batches_tracked; the count is unused without momentum=None
        state = {
            **{k: v for k, v in net.state_dict().items() if k.endswith("num_batches_tracked")},
            **state,
        }
        net.load_state_dict(state)
        net.eval()
    return nets["encoder"], nets["decoder"]
