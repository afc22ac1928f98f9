"""Input checks done once, at the entry of public functions, with errors that name the fix.

- ``check_images``: a batch as a model takes it (per step: shape, dtype, finiteness, range).
- ``check_image_data``, ``check_labels``, ``check_label_matrix``: a whole data set as it enters
  ``vaebook.data`` (once, at construction): layout (N, C, H, W), dtype and range, labels.
- ``require_*``: the fields of the models' configs, each message naming the field and a valid
  value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

CHANNELS = (1, 3)  # grey or colour: how a channel axis is told from a height or width


def _integer_hint(x: Tensor, name: str, uint8: bool = False) -> str:
    """How to turn integer (or bool) images into floats in [0, 1], from their largest value;
    with uint8, that 0..255 values may also be kept as uint8."""
    high = int(x.max()) if x.numel() else 0
    if x.dtype == torch.bool or high == 1:
        return (
            f"its values are 0 and 1, so use {name}.float() (not {name}.float() / 255, which "
            "would make them near-blank)"
        )
    keep = f", or keep them as {name}.to(torch.uint8) (a quarter of the memory)" if uint8 else ""
    if high == 0:
        return (
            f"use {name}.float() / 255 for 8-bit images (0..255){keep}, {name}.float() for 0/1 "
            "images"
        )
    return f"for 8-bit images (0..255) use {name}.float() / 255{keep}"


def _layout_hint(x: Tensor, name: str) -> str:
    """A hint for data that is not (N, C, H, W): no channel axis, channels last, flat vectors."""
    if x.dim() == 3:
        return f"images without a channel axis (N, H, W): add it with {name}.unsqueeze(1)"
    if x.dim() == 4 and x.shape[3] in CHANNELS and x.shape[1] not in CHANNELS:
        return f"channels last (N, H, W, C): move them first with {name}.permute(0, 3, 1, 2)"
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        colour = math.isqrt(x.shape[1] // 3)
        if side * side == x.shape[1]:
            return f"flat vectors: reshape with {name}.view(-1, 1, {side}, {side})"
        if x.shape[1] % 3 == 0 and 3 * colour * colour == x.shape[1]:
            return f"flat vectors: reshape with {name}.view(-1, 3, {colour}, {colour})"
        return f"flat vectors: reshape with {name}.view(-1, C, H, W)"
    return ""


def check_images(
    x: Tensor, image_shape: Sequence[int], unit_range: bool = True, name: str = "x"
) -> None:
    """Raise a ValueError unless x is a float batch (B, *image_shape), finite, in [0, 1] if asked.

    image_shape: (C, H, W), e.g. (1, 28, 28) for MNIST or (3, 64, 64) for Sprites: the model
    config's ``image_shape``, which a shape error names as the setting to change.
    """
    expected = tuple(image_shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, {expected}), got {type(x)}")
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        got = tuple(x.shape)
        if x.dim() == len(expected) and got == expected:
            hint = f"a single image: add the batch dimension with {name}.unsqueeze(0)"
        elif x.dim() == 2 and x.shape[1] == torch.Size(expected).numel():
            hint = f"flat vectors: reshape with {name}.view(-1, *{expected})"
        elif x.dim() == 3 and (1, *got[1:]) == expected:
            hint = f"no channel axis: add it with {name}.unsqueeze(1)"
        elif x.dim() == 4 and (got[3], *got[1:3]) == expected and got[3] != got[1]:
            hint = f"channels last: move them first with {name}.permute(0, 3, 1, 2)"
        elif x.dim() == 4:
            hint = (
                f"set image_shape={got[1:]} in the model's config to match the data, or resize "
                f"the images to {expected[1:]}, e.g. torch.nn.functional.interpolate({name}, "
                f"size={expected[1:]})"
            )
        else:
            hint = _layout_hint(x, name) or "a batch of images is (B, C, H, W)"
        raise ValueError(
            f"{name} must have shape (B, {', '.join(map(str, expected))}) (the model's "
            f"image_shape={expected}), got {got}: {hint}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {x.dtype}; {_integer_hint(x, name)}")
    if not x.numel():
        return
    # one pass: min and max propagate NaN, and an infinite value is the min or the max
    low, high = torch.stack(torch.aminmax(x)).tolist()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values; clean the data first")
    if unit_range and (low < 0 or high > 1):
        raise ValueError(
            f"{name} must lie in [0, 1] for a Bernoulli decoder, got values in "
            f"[{low:.3g}, {high:.3g}]; rescale ({name} / 255 for 8-bit images, "
            f"({name} + 1) / 2 for images in [-1, 1]) or use likelihood='gaussian'"
        )


def check_image_data(x: Tensor, name: str = "images") -> None:
    """Raise unless x is a data set of images (N, C, H, W): float in [0, 1] (finite) or uint8
    in 0..255. One pass over the values. uint8 images holding only 0 and 1 are refused: they
    would become near-blank floats (0 and 1/255); ``x.float()`` keeps them binary."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}; convert with "
            f"torch.as_tensor({name}) (numpy: torch.from_numpy)"
        )
    if x.dim() != 4 or (x.shape[3] in CHANNELS and x.shape[1] not in CHANNELS):
        hint = _layout_hint(x, name) or "a data set of images is (N, C, H, W)"
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}: {hint}")
    if x.dtype == torch.uint8:
        if x.numel() and int(x.max()) == 1:
            raise ValueError(
                f"{name} is uint8 holding only 0 and 1 (binary images): as uint8 they are read "
                f"as 0..255 and would become near-blank; pass {name}.float() (binary floats "
                f"in [0, 1]), not {name}.float() / 255"
            )
        return
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be float in [0, 1] or uint8 in 0..255, got {x.dtype}; "
            f"{_integer_hint(x, name, uint8=True)}"
        )
    if not x.numel():
        return
    low, high = torch.stack(torch.aminmax(x)).tolist()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values; clean the data first")
    if low < 0 or high > 1:
        hint = f"e.g. {name} / 255 for 8-bit values 0..255"
        if low >= -1 and high <= 1:
            hint = f"with ({name} + 1) / 2 for images in [-1, 1]"
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; rescale, {hint}"
        )


def _label_dtype(values: Tensor, name: str, what: str) -> None:
    if values.is_floating_point():
        raise ValueError(
            f"{name} must be integer {what} (torch.long), got {values.dtype}; convert with "
            f"{name}.long() (after {name}.round() if they are not whole numbers by mistake)"
        )
    if values.dtype != torch.long:
        raise ValueError(f"{name} must be torch.long {what}, got {values.dtype}; use {name}.long()")


def _non_negative(values: Tensor, name: str) -> None:
    if values.numel() and int(values.min()) < 0:
        raise ValueError(
            f"{name} must be >= 0 (class indices 0..K-1), got the minimum {int(values.min())}; "
            f"renumber them, e.g. {name} = torch.unique({name}, return_inverse=True)[1]"
        )


def class_indices(values: Tensor, name: str) -> Tensor:
    """values as a long tensor of class indices >= 0, or a ValueError naming the fix: float
    values (``.long()``) and negative ones (an index -1 would wrap around to the last class)."""
    if values.is_floating_point() or values.dtype == torch.bool or values.is_complex():
        raise ValueError(
            f"{name} must be integer class indices, got {values.dtype}; convert them with "
            f"{name}.long()"
        )
    _non_negative(values, name)
    return values.long()


def check_labels(labels: Tensor, n: int, name: str = "labels") -> None:
    """Raise unless labels is (n,) torch.long class indices >= 0."""
    if not isinstance(labels, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor ({n},) long, got {type(labels).__name__}; convert "
            f"with torch.as_tensor({name}).long()"
        )
    _label_dtype(labels, name, "class indices")
    if labels.shape != (n,):
        hint = ""
        if labels.dim() == 2 and labels.shape == (n, 1):
            hint = f": a column, flatten it with {name}.squeeze(1)"
        elif labels.dim() == 2 and len(labels) == n:
            hint = f": one label per image; for one-hot rows use {name}.argmax(1)"
        raise ValueError(
            f"{name} must have shape ({n},) to match the images, got {tuple(labels.shape)}{hint}"
        )
    _non_negative(labels, name)


def check_label_matrix(
    values: Tensor, n: int, name: str, columns: int | None = None, sizes: Sequence[int] = ()
) -> None:
    """Raise unless values is (n, columns) torch.long >= 0, and column a < sizes[a] if given."""
    if not isinstance(values, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor (N, A) long, got {type(values).__name__}; convert "
            f"with torch.as_tensor({name}).long()"
        )
    _label_dtype(values, name, "values")
    shape = f"({n}, {columns if columns is not None else 'A'})"
    if values.dim() == 1 and len(values) == n:
        raise ValueError(
            f"{name} must have shape {shape}, one column per attribute, got a vector "
            f"{tuple(values.shape)}; make it a column with {name}[:, None]"
        )
    if values.dim() != 2 or len(values) != n or columns is not None and values.shape[1] != columns:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(values.shape)}")
    _non_negative(values, name)
    if sizes and len(sizes) != values.shape[1]:
        raise ValueError(
            f"{name} has {values.shape[1]} columns but {len(sizes)} numbers of values are given "
            "(attribute_sizes): give one per column"
        )
    if sizes and values.numel():
        too_big = (values >= torch.as_tensor(sizes, device=values.device)).any(0)
        if too_big.any():
            column = int(too_big.nonzero()[0])
            raise ValueError(
                f"{name} column {column} must lie in 0..{sizes[column] - 1} (its number of "
                f"values is {sizes[column]}), got up to {int(values[:, column].max())}"
            )


# -- config fields ---------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_int(name: str, value, minimum: int, example: int) -> None:
    """Raise unless value is an integer >= minimum."""
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"need {name} >= {minimum} (an integer), got {value!r}; e.g. {name}={example}"
        )


def require_real(
    name: str,
    value,
    example: float,
    minimum: float = 0.0,
    strict: bool = False,
    below: float | None = None,
    alias: str = "",
) -> None:
    """Raise unless value is a finite number >= minimum (> minimum if strict, < below if given).
    alias: another name of the field, given in parentheses (e.g. 'lambda', the paper's)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    ok = ok and (below is None or value < below)
    if not ok:
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        if below is not None:
            bound += f" and < {below:g}"
        called = f"{name} ({alias})" if alias else name
        raise ValueError(
            f"need {called} {bound} (a finite number), got {value!r}; e.g. {name}={example!r}"
        )


def require_choice(name: str, value, choices: Sequence[str]) -> None:
    """Raise unless value is one of choices (a sequence, or a dict's keys)."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{name} must be one of {choices}, got {value!r}; e.g. {name}={choices[0]!r}"
        )


def require_sizes(name: str, value: Sequence, example: tuple[int, ...]) -> None:
    """Raise unless value is a non-empty sequence of integers >= 1 (layer widths)."""
    if not value or not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(
            f"{name} must be a non-empty tuple of layer sizes >= 1, got {value!r}; "
            f"e.g. {name}={example!r}"
        )


def require_image_shape(value: Sequence, example: tuple[int, int, int] = (1, 28, 28)) -> None:
    """Raise unless value is (C, H, W), three integers >= 1."""
    if len(value) != 3 or not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(
            f"image_shape must be (C, H, W), three integers >= 1, got {value!r}; e.g. "
            f"image_shape={example} (MNIST) or image_shape=(3, 64, 64) (Sprites)"
        )
