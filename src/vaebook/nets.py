"""Encoders and decoders for images, MLP or convolutional, and a small image classifier.

An encoder maps images (B, C, H, W) to features (B, F); a decoder maps a code (B, D) to one
output map per pixel (B, C, H, W), e.g. Bernoulli logits. Models put their own heads on top,
e.g. GaussianHead. The MLP nets take any image shape. The convolutional nets take any (C, H, W)
with C in {1, 3} and H, W >= 16 (``check_conv_shape``): their layers are planned from the shape
(``conv_sizes``), and at (1, 28, 28) and (3, 64, 64) the plan gives the networks that the book's
checkpoints were trained with. Also here: CNNClassifier, a small independent classifier that
reads generated images. The Cycle-Consistent VAE's own networks are in
``vaebook.models.cyclevae_nets``, built on the same plan.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

CONV_CHANNELS = (1, 3)  # grey or colour
MIN_CONV_SIDE = 16
# conv nets halve each side while it is >= 8, so their last map's sides lie in 4..7
HALVE_FROM = 8
# leaky_relu keeps a gradient for negative inputs: with plain ReLU, the 64x64 sprites' dark
# background drives the conv decoder's units negative in the first epoch and the VAE ignores z
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": partial(nn.LeakyReLU, 0.2),
}


class Dropout(nn.Dropout):
    """nn.Dropout with the mask drawn from 16-bit random numbers, four per 64-bit draw: each
    unit is dropped with probability p rounded to a multiple of 2^-16 (exactly p for 0.25, 0.5
    and other multiples), as in nn.Dropout otherwise. On CPU the generator's draws, one per unit
    for nn.Dropout's Bernoulli sampler or for uniform floats, take most of dropout's time. The
    nets put it just before an activation (ReLU, LeakyReLU): the same values to rounding, and a
    compiled graph then keeps no bool mask for the backward pass (inductor's CPU kernels write
    those about 10x slower than eager PyTorch)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if torch.compiler.is_compiling():  # drawn outside the graph's kernels, passed in as floats
            return x * _graph_scaled_keep_mask(x.detach(), self.p)
        return x * scaled_keep_mask(x, self.p)


def scaled_keep_mask(x: Tensor, p: float) -> Tensor:
    """Dropout's multiplier for x: 1 / (1 - p) where a unit is kept, 0 where it is dropped; one
    float tensor like x, scale included (x * bool * scale costs two passes each way)."""
    return keep_mask(x.shape, p, x.device).to(x.dtype).mul_(1 / (1 - p))


# the same function as one opaque operation of a compiled graph: random_ would break the graph,
# and a mask drawn inside it would be saved as bool
_graph_scaled_keep_mask = torch.library.custom_op("vaebook::scaled_keep_mask", mutates_args=())(
    scaled_keep_mask
)
_graph_scaled_keep_mask.register_fake(lambda x, p: torch.empty_like(x))


def keep_mask(shape: Sequence[int], p: float, device: torch.device | str = "cpu") -> Tensor:
    """A bool mask of the given shape, True with probability 1 - p (p rounded to a multiple of
    2^-16): 16-bit slices of random 64-bit integers, each uniform on [-2^15, 2^15)."""
    count = math.prod(shape)
    words = torch.empty(-(-count // 4), dtype=torch.int64, device=device)
    bits = words.random_(-(2**63), None).view(torch.int16)[:count].view(shape)  # all 64 bits
    return bits >= round(p * 2**16) - 2**15


def unfold_patches(x: Tensor, kernel: tuple, stride: tuple, padding: tuple) -> Tensor:
    """F.unfold(x, kernel, padding=padding, stride=stride) as a strided view and one copy: on the
    CPU about 3x faster than F.unfold's im2col for small images. x: (B, C, H, W) -> (B, C kh kw,
    L), L the number of kernel positions."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    patches = nn.functional.pad(x, (pw, pw, ph, ph)).unfold(2, kh, sh).unfold(3, kw, sw)
    batch, channels, rows, columns = patches.shape[:4]  # patches: (B, C, rows, columns, kh, kw)
    return patches.permute(0, 1, 4, 5, 2, 3).reshape(batch, channels * kh * kw, rows * columns)


class _WeightGradByUnfold(torch.autograd.Function):
    """conv2d whose weight gradient is one batched matmul on the unfolded input (im2col)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding)
        return nn.functional.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding = ctx.conv
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad, stride, padding)
        if ctx.needs_input_grad[1]:
            columns = unfold_patches(x, weight.shape[2:], stride, padding)
            grad_weight = torch.bmm(grad.flatten(2), columns.transpose(1, 2)).sum(0)
            grad_weight = grad_weight.view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None


class _TransposedConvByFold(torch.autograd.Function):
    """conv_transpose2d as a batched matmul and a fold; backward: an unfold and two matmuls."""

    @staticmethod
    def forward(ctx, x, weight, bias, size, kernel, stride, padding):
        batch, channels, height, width = x.shape
        inputs = x.reshape(batch, channels, height * width)
        # (B, C_in, HW) -> (B, C_out k k, HW), each pixel's patch; bmm: no copies, unlike matmul
        columns = torch.bmm(weight.view(channels, -1).t().expand(batch, -1, -1), inputs)
        out = nn.functional.fold(columns, size, kernel, stride=stride, padding=padding)
        ctx.save_for_backward(inputs, weight)
        ctx.conv = (x.shape, kernel, stride, padding)
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        inputs, weight = ctx.saved_tensors
        shape, kernel, stride, padding = ctx.conv
        grad_columns = unfold_patches(grad, kernel, stride, padding)  # (B, C_out k k, HW)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            rows = weight.view(shape[1], -1).expand(shape[0], -1, -1)
            grad_x = torch.bmm(rows, grad_columns).view(shape)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(inputs, grad_columns.transpose(1, 2)).sum(0)
            grad_weight = grad_weight.view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None, None, None


class UnfoldConv2d(nn.Conv2d):
    """nn.Conv2d (groups 1, dilation 1, zero padding) whose weight gradient is computed on the
    CPU from the unfolded input (im2col) and one batched matmul; the forward pass is PyTorch's.
    Use it for convolutions from a single channel, a grey encoder's first: oneDNN's weight
    gradient for those shapes takes about twice as long. x: (B, C_in, H, W) -> (B, C_out, H',
    W'), as nn.Conv2d."""

    def forward(self, x: Tensor) -> Tensor:
        plain = self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros"
        if x.device.type != "cpu" or plain or x.dim() != 4 or isinstance(self.padding, str):
            return super().forward(x)
        return _WeightGradByUnfold.apply(x, self.weight, self.bias, self.stride, self.padding)

    def as_torch_layer(self) -> nn.Conv2d:
        """PyTorch's nn.Conv2d with this layer's settings (parameters not copied)."""
        sizes = (self.in_channels, self.out_channels, self.kernel_size)
        return nn.Conv2d(
            *sizes, stride=self.stride, padding=self.padding, bias=self.bias is not None
        )


class FoldConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (groups 1, dilation 1) computed on the CPU as a batched matmul and a fold
    (col2im), its backward as an unfold and two matmuls: the same sums in another order; other
    devices keep PyTorch's kernel. Use it for layers to a single channel, a grey decoder's last:
    oneDNN's kernel for those shapes takes 3-4x as long forward and backward; from 3 channels up
    oneDNN is faster.
    x: (B, C_in, H, W) -> (B, C_out, H_out, W_out), H_out = (H - 1) s - 2 p + k + output_padding.
    """

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        plain = self.groups != 1 or self.dilation != (1, 1) or output_size is not None
        if x.device.type != "cpu" or plain or x.dim() != 4:
            return super().forward(x, output_size)
        sides = zip(x.shape[2:], self.stride, self.padding, self.kernel_size, strict=True)
        size = [
            (n - 1) * s - 2 * p + k + extra
            for (n, s, p, k), extra in zip(sides, self.output_padding, strict=True)
        ]
        return _TransposedConvByFold.apply(
            x, self.weight, self.bias, size, self.kernel_size, self.stride, self.padding
        )

    def as_torch_layer(self) -> nn.ConvTranspose2d:
        """PyTorch's nn.ConvTranspose2d with this layer's settings (parameters not copied)."""
        sizes = (self.in_channels, self.out_channels, self.kernel_size)
        settings = {"stride": self.stride, "padding": self.padding, "bias": self.bias is not None}
        return nn.ConvTranspose2d(*sizes, output_padding=self.output_padding, **settings)


def with_torch_layers(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in which every layer with a faster CPU path (one that has
    ``as_torch_layer``) is replaced by PyTorch's own layer with the same parameters and
    buffers: the reference that tests and benchmarks compare the package's layers with."""
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if hasattr(child, "as_torch_layer"):
                plain = child.as_torch_layer()
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain)
    return module


def conv(c_in: int, c_out: int, kernel, **kwargs) -> nn.Conv2d:
    """nn.Conv2d(c_in, c_out, kernel, **kwargs), an UnfoldConv2d when c_in is 1 (the same layer
    and parameters, faster on the CPU)."""
    layer = UnfoldConv2d if c_in == 1 else nn.Conv2d
    return layer(c_in, c_out, kernel, **kwargs)


def conv_transpose(c_in: int, c_out: int, kernel, **kwargs) -> nn.ConvTranspose2d:
    """nn.ConvTranspose2d(c_in, c_out, kernel, **kwargs), a FoldConvTranspose2d when c_out is 1
    (the same layer and parameters, faster on the CPU)."""
    layer = FoldConvTranspose2d if c_out == 1 else nn.ConvTranspose2d
    return layer(c_in, c_out, kernel, **kwargs)


def mlp(
    sizes: Sequence[int],
    activation: Callable[[], nn.Module] = nn.ReLU,
    last_activation: bool = True,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear layers between consecutive sizes, an activation after each (after the last too
    unless last_activation=False), and Dropout(dropout) just before each hidden activation when
    dropout > 0: the same as after it (to rounding) for activations that commute with a
    nonnegative scale, as those of ACTIVATIONS do. mlp([784, 400, 20]) is 784 -> 400 -> 20."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        hidden = i < len(sizes) - 2
        if dropout > 0 and hidden:
            layers.append(Dropout(dropout))
        if last_activation or hidden:
            layers.append(activation())
    return nn.Sequential(*layers)


def check_conv_shape(image_shape: Sequence[int], mlp_hint: bool = True) -> tuple[int, int, int]:
    """image_shape as a tuple (C, H, W) if convolutional nets can take it: C in {1, 3} and
    H, W >= 16; otherwise a ValueError that says how to convert or resize the images (and, with
    mlp_hint, that arch='mlp' takes any shape)."""
    shape = tuple(int(n) for n in image_shape)
    mlp = ", or use arch='mlp'" if mlp_hint else ""
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {shape}")
    channels, height, width = shape
    if channels not in CONV_CHANNELS:
        raise ValueError(
            f"convolutional nets take 1 (grey) or 3 (colour) channels, got {channels} in image "
            f"shape {shape}; convert the images, e.g. x.mean(1, keepdim=True) to grey, then "
            f"x.expand(-1, 3, -1, -1) for 3 channels, and set image_shape to match{mlp}"
        )
    if min(height, width) < MIN_CONV_SIDE:
        size = (max(height, MIN_CONV_SIDE), max(width, MIN_CONV_SIDE))
        raise ValueError(
            f"convolutional nets need height and width >= {MIN_CONV_SIDE}, got {height}x{width} "
            f"in image shape {shape}; resize the images, e.g. "
            f"torch.nn.functional.interpolate(x, size={size}), and set image_shape to match{mlp}"
        )
    return shape


def conv_sizes(image_shape: Sequence[int]) -> list[tuple[int, int]]:
    """The (height, width) of a conv encoder's input and of the map after each of its
    convolutions: each side halves (rounding down) while it is >= 8, so the last map's sides lie
    in 4..7; a side already below 8 keeps its size while the other one shrinks.

    (1, 28, 28): 28 -> 14 -> 7; (3, 64, 64): 64 -> 32 -> 16 -> 8 -> 4 (the paper's nets);
    (1, 112, 92): [(112, 92), (56, 46), (28, 23), (14, 11), (7, 5)]."""
    sizes = [check_conv_shape(image_shape)[1:]]
    while max(sizes[-1]) >= HALVE_FROM:
        sizes.append(tuple(n // 2 if n >= HALVE_FROM else n for n in sizes[-1]))
    return sizes


def _axis_plan(large: int, small: int) -> tuple[int, int, int]:
    """(kernel, stride, output_padding) along one side that goes from `large` to `small`.

    Kernel 4, stride 2, padding 1 halves a side, rounding down; the transposed convolution
    doubles it back, plus output_padding 1 for the row an odd side lost. Kernel 3, stride 1,
    padding 1 keeps a side that is already small while the other one shrinks."""
    return (3, 1, 0) if small == large else (4, 2, large - 2 * small)


def _conv_plan(before: tuple[int, int], after: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
    """(kernel, stride, output_padding), each a (height, width) pair, from before to after."""
    return tuple(zip(*map(_axis_plan, before, after), strict=True))


def down_conv(c_in: int, c_out: int, before: tuple[int, int], after: tuple[int, int]) -> nn.Conv2d:
    """The convolution from a (c_in, *before) map to (c_out, *after), one step of conv_sizes."""
    kernel, stride, _ = _conv_plan(before, after)
    return conv(c_in, c_out, kernel, stride=stride, padding=1)


def up_conv(
    c_in: int, c_out: int, before: tuple[int, int], after: tuple[int, int]
) -> nn.ConvTranspose2d:
    """The transposed convolution from (c_in, *after) back to exactly (c_out, *before), the
    mirror of down_conv(before -> after)."""
    kernel, stride, output_padding = _conv_plan(before, after)
    return conv_transpose(
        c_in, c_out, kernel, stride=stride, padding=1, output_padding=output_padding
    )


class MLPEncoder(nn.Module):
    """Flatten, then hidden layers with `activation`, and dropout on the features (in training,
    when > 0; just before the last activation, see Dropout). x: (B, C, H, W) -> (B, hidden[-1])."""

    def __init__(
        self,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.net = mlp(
            [int(torch.Size(image_shape).numel()), *hidden], activation_layer(activation)
        )
        if dropout > 0:
            self.net.insert(len(self.net) - 1, Dropout(dropout))
        self.out_features = hidden[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """Hidden layers with `activation` (and dropout, when > 0, in training), then a linear map
    to every pixel.

    z: (B, D) -> (B, C, H, W).
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.image_shape = tuple(image_shape)
        sizes = [latent_dim, *reversed(hidden), int(torch.Size(image_shape).numel())]
        self.net = mlp(sizes, activation_layer(activation), last_activation=False, dropout=dropout)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.image_shape)


def activation_layer(name: str) -> Callable[[], nn.Module]:
    """The constructor of ACTIVATIONS[name]; an unknown name gets an error naming the known."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def _conv_channels(blocks: int) -> list[int]:
    """Output channels of a conv encoder's `blocks` convolutions: 32 in the first half, 64 in
    the second. With conv_sizes this gives the paper's nets: 28x28 [32, 64], 64x64
    [32, 32, 64, 64]."""
    return [32 if 2 * i < blocks else 64 for i in range(blocks)]


def _pairs(items: Sequence) -> list[tuple]:
    return list(zip(items[:-1], items[1:], strict=True))


class ConvEncoder(nn.Module):
    """Convolutions with `activation` down to a small map (conv_sizes), then one hidden linear
    layer (with dropout on its features in training, when > 0): 4x4 stride 2 halves a side; a
    side already below 8 keeps its size (3x3 stride 1). Channels: C, then 32 for the first half
    of the convolutions, 64 for the second.

    x: (B, C, H, W) with C in {1, 3}, H, W >= 16 -> (B, hidden). E.g. (B, 1, 112, 92) ->
    (B, 32, 56, 46) -> (B, 32, 28, 23) -> (B, 64, 14, 11) -> (B, 64, 7, 5) -> (B, hidden).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        hidden: int = 256,
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        sizes = conv_sizes(image_shape)
        channels = [int(image_shape[0]), *_conv_channels(len(sizes) - 1)]
        act = activation_layer(activation)
        layers: list[nn.Module] = []
        for (c_in, c_out), (before, after) in zip(_pairs(channels), _pairs(sizes), strict=True):
            layers += [down_conv(c_in, c_out, before, after), act()]
        height, width = sizes[-1]
        layers += [nn.Flatten(), nn.Linear(channels[-1] * height * width, hidden)]
        if dropout > 0:  # on the features, just before their activation (see Dropout)
            layers.append(Dropout(dropout))
        layers.append(act())
        self.net = nn.Sequential(*layers)
        self.out_features = hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """The mirror of ConvEncoder: two linear layers to the encoder's last map, then transposed
    convolutions with `activation` (none after the last) back through the encoder's sizes in
    reverse, exactly: an odd side gets output_padding 1.

    z: (B, D) -> (B, C, H, W), one output (e.g. a logit) per pixel. E.g. (B, D) -> (B, hidden)
    -> (B, 64, 7, 5) -> (B, 64, 14, 11) -> (B, 32, 28, 23) -> (B, 32, 56, 46) -> (B, 1, 112, 92).
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        hidden: int = 256,
        activation: str = "relu",
    ):
        super().__init__()
        sizes = conv_sizes(image_shape)
        channels = [int(image_shape[0]), *_conv_channels(len(sizes) - 1)]
        height, width = sizes[-1]
        act = activation_layer(activation)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, hidden),
            act(),
            nn.Linear(hidden, channels[-1] * height * width),
            act(),
            nn.Unflatten(1, (channels[-1], height, width)),
        ]
        steps = list(zip(_pairs(channels), _pairs(sizes), strict=True))[::-1]
        for i, ((c_out, c_in), (before, after)) in enumerate(steps):
            layers.append(up_conv(c_in, c_out, before, after))
            if i < len(steps) - 1:
                layers.append(act())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def make_encoder(
    image_shape: Sequence[int],
    arch: str,
    hidden: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Module:
    """An encoder body by name: arch 'mlp' (hidden sizes) or 'conv' (hidden[-1] units), with
    hidden activations `activation` (a key of ACTIVATIONS) and ``dropout`` on its features."""
    if arch == "mlp":
        return MLPEncoder(image_shape, hidden, activation, dropout)
    if arch == "conv":
        return ConvEncoder(image_shape, hidden[-1], activation, dropout)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")


def make_decoder(
    latent_dim: int,
    image_shape: Sequence[int],
    arch: str,
    hidden: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Module:
    """A decoder by name, the mirror of make_encoder; ``dropout`` (MLP only) after each hidden
    layer."""
    if arch == "mlp":
        return MLPDecoder(latent_dim, image_shape, hidden, activation, dropout)
    if dropout > 0:
        raise ValueError(f"decoder dropout is for arch='mlp'; use dropout=0.0 with arch={arch!r}")
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
    used to read generated images: x (B, C, H, W) -> logits (B, classes), any H, W >= 4."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), classes: int = 10):
        super().__init__()
        channels, height, width = image_shape
        if min(height, width) < 4:
            raise ValueError(
                f"CNNClassifier needs images of at least 4x4, got {tuple(image_shape)}"
            )
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
            nn.Linear(64 * (height // 4) * (width // 4), 128),
            nn.ReLU(),
            nn.Linear(128, classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy and accuracy on a labelled batch (images (B, C, H, W), labels (B,))."""
        x, labels = batch
        logits = self(x)
        accuracy = (logits.argmax(1) == labels).float().mean().detach()
        return {"total": nn.functional.cross_entropy(logits, labels), "accuracy": accuracy}
