"""Encoders and decoders for 28x28x1 and 64x64x3 images, MLP or convolutional.

An encoder maps images (B, C, H, W) to features (B, F); a decoder maps a code (B, D) to one
output map per pixel (B, C, H, W), e.g. Bernoulli logits. Models put their own heads on top,
e.g. GaussianHead. Also here: CNNClassifier, a small independent classifier that reads generated
images. The Cycle-Consistent VAE's own networks are in ``vaebook.models.cyclevae_nets``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

SUPPORTED_CONV_SHAPES = ((1, 28, 28), (3, 64, 64))
# leaky_relu keeps a gradient for negative inputs: with plain ReLU, the 64x64 sprites' dark
# background drives the conv decoder's units negative in the first epoch and the VAE ignores z
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": partial(nn.LeakyReLU, 0.2),
}


def mlp(
    sizes: Sequence[int],
    activation: Callable[[], nn.Module] = nn.ReLU,
    last_activation: bool = True,
) -> nn.Sequential:
    """Linear layers between consecutive sizes, an activation after each (after the last too
    unless last_activation=False). mlp([784, 400, 20]) is 784 -> 400 -> 20."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _check_conv_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(image_shape)
    if shape not in SUPPORTED_CONV_SHAPES:
        raise ValueError(
            f"convolutional nets exist for image shapes {SUPPORTED_CONV_SHAPES}, got {shape}; "
            "resize the images or use arch='mlp'"
        )
    return shape


class MLPEncoder(nn.Module):
    """Flatten, then hidden layers with `activation`. x: (B, C, H, W) -> (B, hidden[-1])."""

    def __init__(
        self, image_shape: Sequence[int], hidden: Sequence[int] = (400,), activation: str = "relu"
    ):
        super().__init__()
        self.net = mlp(
            [int(torch.Size(image_shape).numel()), *hidden], activation_layer(activation)
        )
        self.out_features = hidden[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """Hidden layers with `activation`, then a linear map to every pixel.

    z: (B, D) -> (B, C, H, W).
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
    ):
        super().__init__()
        self.image_shape = tuple(image_shape)
        sizes = [latent_dim, *reversed(hidden), int(torch.Size(image_shape).numel())]
        self.net = mlp(sizes, activation_layer(activation), last_activation=False)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.image_shape)


def activation_layer(name: str) -> Callable[[], nn.Module]:
    """The constructor of ACTIVATIONS[name]; an unknown name gets an error naming the known."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def _conv_channels(shape: tuple[int, int, int]) -> list[int]:
    # 28x28: two stride-2 convs (28 -> 14 -> 7); 64x64: four (64 -> 32 -> 16 -> 8 -> 4)
    return [shape[0], 32, 64] if shape[1] == 28 else [shape[0], 32, 32, 64, 64]


class ConvEncoder(nn.Module):
    """4x4 stride-2 convolutions with `activation`, then one hidden linear layer.

    x: (B, 1, 28, 28) or (B, 3, 64, 64) -> (B, hidden).
    """

    def __init__(self, image_shape: Sequence[int], hidden: int = 256, activation: str = "relu"):
        super().__init__()
        shape = _check_conv_shape(image_shape)
        channels = _conv_channels(shape)
        act = activation_layer(activation)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), act()]
        side = shape[1] // 2 ** (len(channels) - 1)
        layers += [nn.Flatten(), nn.Linear(channels[-1] * side * side, hidden), act()]
        self.net = nn.Sequential(*layers)
        self.out_features = hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """The mirror of ConvEncoder: linear layers, then 4x4 stride-2 transposed convolutions.

    z: (B, D) -> (B, 1, 28, 28) or (B, 3, 64, 64), one output (e.g. a logit) per pixel.
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        hidden: int = 256,
        activation: str = "relu",
    ):
        super().__init__()
        shape = _check_conv_shape(image_shape)
        channels = _conv_channels(shape)[::-1]
        side = shape[1] // 2 ** (len(channels) - 1)
        act = activation_layer(activation)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, hidden),
            act(),
            nn.Linear(hidden, channels[0] * side * side),
            act(),
            nn.Unflatten(1, (channels[0], side, side)),
        ]
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < len(channels) - 2:
                layers.append(act())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def make_encoder(
    image_shape: Sequence[int], arch: str, hidden: Sequence[int], activation: str = "relu"
) -> nn.Module:
    """An encoder body by name: arch 'mlp' (hidden sizes) or 'conv' (hidden[-1] units), with
    hidden activations `activation` (a key of ACTIVATIONS)."""
    if arch == "mlp":
        return MLPEncoder(image_shape, hidden, activation)
    if arch == "conv":
        return ConvEncoder(image_shape, hidden[-1], activation)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")


def make_decoder(
    latent_dim: int,
    image_shape: Sequence[int],
    arch: str,
    hidden: Sequence[int],
    activation: str = "relu",
) -> nn.Module:
    """A decoder by name, the mirror of make_encoder."""
    if arch == "mlp":
        return MLPDecoder(latent_dim, image_shape, hidden, activation)
    if arch == "conv":
        return ConvDecoder(latent_dim, image_shape, hidden[-1], activation)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")


class GaussianHead(nn.Module):
    """Features (B, F) -> mean, logvar (B, D) of a diagonal Gaussian, from one linear layer."""

    def __init__(self, in_features: int, latent_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * latent_dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.linear(h).chunk(2, dim=-1)
        return mean, logvar


class CNNClassifier(nn.Module):
    """A small independent image classifier (two 3x3 conv + max-pool stages, one hidden layer),
    used to read generated images: x (B, 1, 28, 28) -> logits (B, classes)."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), classes: int = 10):
        super().__init__()
        channels, side = image_shape[0], image_shape[1]
        self.image_shape = tuple(image_shape)
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(64 * (side // 4) ** 2, 128),
            nn.ReLU(),
            nn.Linear(128, classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy and accuracy on a labelled batch (images (B, 1, 28, 28), labels (B,))."""
        x, labels = batch
        logits = self(x)
        accuracy = (logits.argmax(1) == labels).float().mean().detach()
        return {"total": nn.functional.cross_entropy(logits, labels), "accuracy": accuracy}
