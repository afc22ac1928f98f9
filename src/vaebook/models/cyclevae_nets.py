"""The Cycle-Consistent VAE's encoder and decoder (Jha et al. 2018, arXiv 1804.10469): the
authors' architecture for 28x28x1 images, ours for 64x64x3, and for any other (C, H, W) with
C in {1, 3} and H, W >= 16 one planned from the shape (``vaebook.nets.conv_sizes``); InstanceNorm
with running statistics (RunningInstanceNorm2d, with a choice of what it does in eval mode), and
the loader of the weights the authors released (load_authors_cyclevae).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from vaebook.nets import (
    check_conv_shape,
    conv,
    conv_sizes,
    conv_transpose,
    down_conv,
    up_conv,
)

NORM_MODES = ("per-image", "running")
FEATURES = 256  # what cycle_conv_features gives per image, what the heads read
# the paper's shapes keep their own networks, so that their checkpoints load:
# shape -> (kernel, channels) of the encoder's stride-2 convolutions (padding 1)
PAPER_ENCODERS = {(1, 28, 28): (5, [1, 16, 32, 64]), (3, 64, 64): (4, [3, 32, 64, 128, 128, 64])}
# shape -> (channels, paddings) of the decoder's 4x4 stride-2 transposed convolutions from 128x2x2
PAPER_DECODERS = {
    (1, 28, 28): ([128, 32, 16, 1], [0, 0, 1]),
    (3, 64, 64): ([128, 128, 64, 32, 16, 3], [1] * 5),
}


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
        if not (self.training or self.per_image) or x.dim() != 4 or x.shape[2:].numel() == 1:
            return super().forward(x)  # and its errors, e.g. for a 1 x 1 map in training
        batch, channels, height, width = x.shape
        pixels = height * width
        # each image's channel is a row of a layer norm: one fused kernel, on the CPU about half
        # the time of instance_norm, which runs batch_norm on copies of the running statistics
        out, mean, rstd = torch.native_layer_norm(
            x.reshape(batch * channels, pixels), (pixels,), None, None, self.eps
        )
        if self.training:
            with torch.no_grad():  # what instance_norm does: the batch's mean of each statistic
                unbiased_var = (rstd.pow(-2) - self.eps) * (pixels / (pixels - 1))
                self.running_mean.lerp_(mean.view(batch, channels).mean(0), self.momentum)
                self.running_var.lerp_(unbiased_var.view(batch, channels).mean(0), self.momentum)
        return out.view_as(x)

    def as_torch_layer(self) -> nn.InstanceNorm2d:
        """PyTorch's nn.InstanceNorm2d with running statistics (buffers not copied); it normalises
        by the running statistics in eval mode, as norm mode 'running'."""
        return nn.InstanceNorm2d(
            self.num_features, eps=self.eps, momentum=self.momentum, track_running_stats=True
        )


def set_norm_mode(module: nn.Module, mode: str) -> None:
    """Make every RunningInstanceNorm2d inside ``module`` use ``mode`` in eval mode:
    'per-image' (each image's own statistics) or 'running' (the running statistics)."""
    if mode not in NORM_MODES:
        raise ValueError(f"norm mode must be one of {NORM_MODES}, got {mode!r}")
    for layer in module.modules():
        if isinstance(layer, RunningInstanceNorm2d):
            layer.per_image = mode == "per-image"


def _pairs(items: Sequence) -> list[tuple]:
    return list(zip(items[:-1], items[1:], strict=True))


def _cycle_channels(blocks: int) -> list[int]:
    """Output channels of the planned encoder's `blocks` convolutions: 16, 32, then 64 (the
    authors' 28x28 progression, capped)."""
    return [min(16 * 2**i, 64) for i in range(blocks)]


def cycle_conv_features(image_shape: Sequence[int]) -> nn.Sequential:
    """Convolutions, each with RunningInstanceNorm2d and ReLU, to FEATURES = 256 features.

    x: (B, C, H, W) -> (B, 256), C in {1, 3}, H, W >= 16.
    28x28x1: three 5x5 stride-2 convolutions (padding 1) 1 -> 16 -> 32 -> 64, to 64 x 2 x 2 (the
    authors'); 64x64x3: five 4x4 stride-2 convolutions (padding 1) 3 -> 32 -> 64 -> 128 -> 128 ->
    64, to 64 x 2 x 2 (ours). Other shapes: the sizes of ``vaebook.nets.conv_sizes`` (4x4 stride 2
    halves a side until it is below 8), channels 16, 32, then 64, and a linear layer with ReLU to
    256, e.g. (1, 112, 92) -> 16x56x46 -> 32x28x23 -> 64x14x11 -> 64x7x5 -> 256."""
    shape = check_conv_shape(image_shape, mlp_hint=False)
    tail: dict[str, nn.Module] = {}
    if shape in PAPER_ENCODERS:
        kernel, channels = PAPER_ENCODERS[shape]
        convs = [conv(c_in, c_out, kernel, stride=2, padding=1) for c_in, c_out in _pairs(channels)]
    else:
        sizes = conv_sizes(shape)
        channels = [shape[0], *_cycle_channels(len(sizes) - 1)]
        convs = [
            down_conv(c_in, c_out, before, after)
            for (c_in, c_out), (before, after) in zip(_pairs(channels), _pairs(sizes), strict=True)
        ]
        # a map of any size, e.g. 64 x 7 x 5, to the 256 features that the heads expect
        height, width = sizes[-1]
        tail = {
            "linear": nn.Linear(channels[-1] * height * width, FEATURES),
            "linear_relu": nn.ReLU(),
        }
    layers: dict[str, nn.Module] = {}
    for i, layer in enumerate(convs, start=1):
        layers[f"conv{i}"] = layer
        layers[f"norm{i}"] = RunningInstanceNorm2d(layer.out_channels)
        layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(OrderedDict({**layers, "flatten": nn.Flatten(), **tail}))


def authors_init(module: nn.Module) -> None:
    """Jha et al.'s initialisation: N(0, 0.05^2) weights and zero biases for Conv2d and Linear
    layers (transposed convolutions keep PyTorch's default, as in their code)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):  # not the transposed convolutions
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
        self.unspecified_mean = nn.Linear(FEATURES, unspecified_dim)
        self.unspecified_logvar = nn.Linear(FEATURES, unspecified_dim)
        self.specified = nn.Linear(FEATURES, specified_dim)
        authors_init(self)
        set_norm_mode(self, norm_mode)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.heads(self.features(x))

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """h: (B, 256) convolutional features -> mean, log-variance of z and s."""
        return self.unspecified_mean(h), self.unspecified_logvar(h), self.specified(h)


class CycleDecoder(nn.Module):
    """(z (B, unspecified_dim), s (B, specified_dim)) -> images (B, C, H, W) in [0, 1].

    Each code goes through Linear(., 256) and LeakyReLU 0.2; the 512 values go through 4x4
    transposed convolutions with RunningInstanceNorm2d and LeakyReLU 0.2 (none after the last),
    then a sigmoid. 28x28x1: as 128 x 2 x 2, stride 2, 128 -> 32 -> 16 -> 1, padding 0, 0, 1 (the
    authors'); 64x64x3: as 128 x 2 x 2, stride 2, 128 -> 128 -> 64 -> 32 -> 16 -> 3, padding 1
    (ours). Other shapes mirror cycle_conv_features: Linear 512 -> the encoder's last map and
    LeakyReLU, then transposed convolutions back through its sizes to exactly (C, H, W), e.g.
    (1, 112, 92): 64x7x5 -> 64x14x11 -> 32x28x23 -> 16x56x46 -> 1x112x92.
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        unspecified_dim: int = 16,
        specified_dim: int = 16,
        norm_mode: str = "per-image",
    ):
        super().__init__()
        shape = check_conv_shape(image_shape, mlp_hint=False)
        self.unspecified_input = nn.Linear(unspecified_dim, FEATURES)
        self.specified_input = nn.Linear(specified_dim, FEATURES)
        if shape in PAPER_DECODERS:
            channels, paddings = PAPER_DECODERS[shape]
            layers: dict[str, nn.Module] = {"unflatten": nn.Unflatten(1, (128, 2, 2))}
            deconvs = [
                conv_transpose(c_in, c_out, 4, stride=2, padding=padding)
                for (c_in, c_out), padding in zip(_pairs(channels), paddings, strict=True)
            ]
        else:
            sizes = conv_sizes(shape)
            channels = [shape[0], *_cycle_channels(len(sizes) - 1)]
            height, width = sizes[-1]
            layers = {
                "linear": nn.Linear(2 * FEATURES, channels[-1] * height * width),
                "linear_relu": nn.LeakyReLU(0.2),
                "unflatten": nn.Unflatten(1, (channels[-1], height, width)),
            }
            steps = zip(_pairs(channels), _pairs(sizes), strict=True)
            deconvs = [
                up_conv(c_in, c_out, before, after)
                for (c_out, c_in), (before, after) in list(steps)[::-1]
            ]
        for i, deconv in enumerate(deconvs, start=1):
            layers[f"deconv{i}"] = deconv
            if i < len(deconvs):
                layers[f"norm{i}"] = RunningInstanceNorm2d(deconv.out_channels)
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
