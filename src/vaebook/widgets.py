"""Explorers: the trained models to play with, live in JupyterLab and pre-rendered in the book.

An explorer has a few discrete ``controls`` (each a `Control`: a label and its options) and
``render(state) -> (image (C, H, W) in [0, 1], caption)`` for a state {control name: option
index}. Two views serve every explorer:

- ``live(explorer)``: ipywidgets (sliders and menus) around an image; each change renders once
  and is cached, so moving back to a state answers at once.
- ``static_html(explorer)``: every state (or, for large ones, every state that differs from the
  defaults in one control) rendered ahead as PNG, with a plain HTML/JavaScript control: it works
  in the built book without a kernel and shows the default image where JavaScript is off.

The explorers: `UnitExplorer` (a VAE's units), `TraversalExplorer` and `InterpolationExplorer`
(InfoCatVAE), `SwapExplorer`
(the Cycle-Consistent VAE), `ConditionExplorer` (FA-VAE from labels, with a reader's verdict)
and `ARDExplorer` (SSHIBA's factor activity as ARD prunes it).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image
from torch import Tensor

from vaebook import fa


@dataclass
class Control:
    """One control: its label and options (label shown, value); `default` indexes options."""

    label: str
    options: list[tuple[str, object]]
    default: int = 0


class Explorer(Protocol):
    controls: dict[str, Control]

    def render(self, state: dict[str, int]) -> tuple[Tensor, str]: ...


def default_state(explorer: Explorer) -> dict[str, int]:
    return {name: control.default for name, control in explorer.controls.items()}


def _values(explorer: Explorer, state: dict[str, int]) -> dict[str, object]:
    """The option values a state (option indices) picks."""
    return {name: explorer.controls[name].options[i][1] for name, i in state.items()}


def _steps(low: float, high: float, n: int) -> list[tuple[str, float]]:
    return [(f"{v:+.2f}", v) for v in torch.linspace(low, high, n).tolist()]


# -- the explorers --------------------------------------------------------------------------


class TraversalExplorer:
    """InfoCatVAE: a category's mode, moved along one of its own latent units. The code is the
    category's prior mean mu_c plus `offset` on unit `unit` of the category's block."""

    def __init__(self, model, labels: Sequence[str] | None = None, steps: int = 8):
        self.model = model.cpu().eval()
        k, delta = model.config.categories, model.config.delta
        labels = labels or [f"category {c}" for c in range(k)]
        self.controls = {
            "category": Control("category", [(labels[c], c) for c in range(k)]),
            "unit": Control("unit of its mode", [(f"unit {u + 1}", u) for u in range(delta)]),
            "offset": Control("offset from the mode", _steps(-3, 3, steps), default=steps // 2),
        }

    @torch.no_grad()
    def render(self, state: dict[str, int]) -> tuple[Tensor, str]:
        v = _values(self, state)
        code = self.model.means[v["category"]].clone()
        code[v["category"] * self.model.config.delta + v["unit"]] += v["offset"]
        image = self.model.decode(code[None])[0]
        return (
            image,
            f"{self.controls['category'].options[state['category']][0]}, offset {v['offset']:+.2f}",
        )


class UnitExplorer:
    """A VAE (plain or beta): a test image's code, one latent unit set to a value. units: the
    units offered, e.g. those with the largest KL; labels: their names in the menu."""

    def __init__(
        self,
        model,
        images: Tensor,
        units: Sequence[int],
        labels: Sequence[str] | None = None,
        steps: int = 8,
    ):
        self.model = model.cpu().eval()
        with torch.no_grad():
            self.codes = self.model.encode(images.cpu())[0]
        labels = labels or [f"unit {u}" for u in units]
        self.controls = {
            "image": Control("code of", [(f"image {i + 1}", i) for i in range(len(images))]),
            "unit": Control("unit", list(zip(labels, units, strict=True))),
            "value": Control("its value", _steps(-3, 3, steps), default=steps // 2),
        }

    @torch.no_grad()
    def render(self, state: dict[str, int]) -> tuple[Tensor, str]:
        v = _values(self, state)
        code = self.codes[v["image"]].clone()
        code[v["unit"]] = v["value"]
        unit = self.controls["unit"].options[state["unit"]][0]
        return self.model.decode(code[None])[
            0
        ], f"image {v['image'] + 1}, {unit} = {v['value']:+.2f}"


class InterpolationExplorer:
    """InfoCatVAE: the straight line from one category's mode to another's. It starts partway
    along the line, where moving either end changes the picture (at 0% only `start` would)."""

    def __init__(self, model, labels: Sequence[str] | None = None, steps: int = 8):
        self.model = model.cpu().eval()
        k = model.config.categories
        labels = labels or [f"category {c}" for c in range(k)]
        options = [(labels[c], c) for c in range(k)]
        self.controls = {
            "start": Control("from", options),
            "end": Control("to", options, default=1 % k),
            "share": Control("how far", _steps(0, 1, steps), default=steps // 2),
        }

    @torch.no_grad()
    def render(self, state: dict[str, int]) -> tuple[Tensor, str]:
        v = _values(self, state)
        means = self.model.means
        code = (1 - v["share"]) * means[v["start"]] + v["share"] * means[v["end"]]
        return self.model.decode(code[None])[0], f"{v['share']:.0%} of the way"


class SwapExplorer:
    """The Cycle-Consistent VAE: s (what pairs share) from one gallery image, z (the rest) from
    another gallery image or from the prior N(0, I)."""

    def __init__(self, model, gallery: Tensor, prior_samples: int = 4, seed: int = 0):
        self.model = model.cpu().eval()
        self.gallery = gallery.cpu()
        with torch.no_grad():
            z, _, s = self.model.encode(self.gallery)
        generator = torch.Generator().manual_seed(seed)
        prior = torch.randn(prior_samples, z.shape[1], generator=generator)
        self.s, self.z = s, torch.cat([z, prior])
        images = [(f"image {i + 1}", i) for i in range(len(gallery))]
        drawn = [(f"prior draw {i + 1}", len(gallery) + i) for i in range(prior_samples)]
        self.controls = {
            "s_from": Control("s (what pairs share) from", images),
            "z_from": Control("z (the rest) from", images + drawn, default=1 % len(gallery)),
        }

    @torch.no_grad()
    def render(self, state: dict[str, int]) -> tuple[Tensor, str]:
        v = _values(self, state)
        image = self.model.decode(self.z[v["z_from"]][None], self.s[v["s_from"]][None])[0]
        z_label = self.controls["z_from"].options[state["z_from"]][0]
        return image, f"s from image {v['s_from'] + 1}, z from {z_label}"


class ConditionExplorer:
    """FA-VAE from labels: one menu per label view, an image generated through the factor-
    analysis layer, and the verdict of an independent reader beside it.

    generate: {name: value index} -> image (C, H, W) in [0, 1].
    read: image (C, H, W) -> {name: value index} for the names it reads (e.g. the attributes).
    choices: {name: [value label, ...]}, the menus in order; defaults: {name: index}.
    """

    def __init__(
        self,
        generate: Callable[[dict[str, int]], Tensor],
        read: Callable[[Tensor], dict[str, int]],
        choices: dict[str, list[str]],
        defaults: dict[str, int] | None = None,
    ):
        self.generate, self.read = generate, read
        defaults = defaults or {}
        self.controls = {
            name: Control(
                name, [(label, i) for i, label in enumerate(labels)], defaults.get(name, 0)
            )
            for name, labels in choices.items()
        }

    @torch.no_grad()
    def render(self, state: dict[str, int]) -> tuple[Tensor, str]:
        requested = _values(self, state)
        image = self.generate(requested)
        verdict = []
        for name, value in self.read(image).items():
            label = self.controls[name].options[value][0]
            verdict.append(f"{name} {label} {'✓' if value == requested[name] else '✗'}")
        return image, "reader: " + ", ".join(verdict)


class ARDExplorer:
    """SSHIBA: the factor-by-view activity map after each sweep while ARD prunes factors.
    snapshots: [(sweep, activity (views, K at that sweep))]; pruned factors show as empty
    columns on the right, factors are sorted by their total activity."""

    def __init__(self, snapshots: list[tuple[int, Tensor]], views: Sequence[str], cell: int = 12):
        self.snapshots, self.views, self.cell = snapshots, list(views), cell
        self.width = max(a.shape[1] for _, a in snapshots)
        options = [(f"sweep {sweep}", i) for i, (sweep, _) in enumerate(snapshots)]
        self.controls = {"sweep": Control("after sweep", options)}

    def render(self, state: dict[str, int]) -> tuple[Tensor, str]:
        sweep, activity = self.snapshots[state["sweep"]]
        activity = activity.float().cpu()
        activity = activity[:, activity.sum(0).argsort(descending=True)]
        grid = torch.zeros(len(self.views), self.width)
        grid[:, : activity.shape[1]] = activity
        image = grid.repeat_interleave(self.cell, 0).repeat_interleave(self.cell, 1)
        rows = ", ".join(self.views)
        return image[None], f"sweep {sweep}: {activity.shape[1]} factors kept (rows: {rows})"


def ard_snapshots(layer: fa.SSHIBA, sweeps: int, every: int = 1) -> list[tuple[int, Tensor]]:
    """Fit `layer` for `sweeps` sweeps, recording its activity (views, K) before the first and
    after every `every`-th sweep: the frames of an `ARDExplorer`."""
    snapshots = [(0, layer.activity().cpu())]
    for sweep in range(1, sweeps + 1):
        layer.step()
        if sweep % every == 0 or sweep == sweeps:
            snapshots.append((sweep, layer.activity().cpu()))
    return snapshots


# -- the two views ----------------------------------------------------------------------------


def png(image: Tensor, scale: int = 1) -> bytes:
    """An image (C, H, W) in [0, 1], C 1 or 3, as PNG bytes, each pixel `scale` x `scale`."""
    image = image.detach().float().cpu().clamp(0, 1)
    pixels = (image * 255).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    array = pixels[0].numpy() if len(pixels) == 1 else pixels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


class Rendered:
    """An explorer's states rendered once each: (PNG bytes, caption) by state."""

    def __init__(self, explorer: Explorer, scale: int = 1):
        self.explorer, self.scale = explorer, scale
        self.cache: dict[tuple[int, ...], tuple[bytes, str]] = {}

    def __call__(self, state: dict[str, int]) -> tuple[bytes, str]:
        key = tuple(state[name] for name in self.explorer.controls)
        if key not in self.cache:
            image, caption = self.explorer.render(state)
            self.cache[key] = png(image, self.scale), caption
        return self.cache[key]


def live(explorer: Explorer, scale: int = 4):
    """The explorer as ipywidgets: a slider per numeric control, a menu per other control, the
    image and its caption. Returns the widget box; `box.controls[name]` is each control."""
    import ipywidgets as widgets

    rendered = Rendered(explorer, scale)
    inputs = {}
    for name, control in explorer.controls.items():
        numeric = all(isinstance(value, float) for _, value in control.options)
        kind = widgets.SelectionSlider if numeric else widgets.Dropdown
        inputs[name] = kind(
            options=[(label, i) for i, (label, _) in enumerate(control.options)],
            value=control.default,
            description=control.label,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="420px"),
        )
    image = widgets.Image(format="png")
    caption = widgets.Label()

    def update(_=None):
        picture, text = rendered({name: w.value for name, w in inputs.items()})
        image.value, caption.value = picture, text

    for widget in inputs.values():
        widget.observe(update, names="value")
    update()
    box = widgets.VBox([*inputs.values(), image, caption])
    box.controls, box.image, box.caption = inputs, image, caption
    return box


def states(explorer: Explorer, one_at_a_time: bool = False) -> list[dict[str, int]]:
    """Every state, or with `one_at_a_time` the defaults and every state that differs from them
    in one control (for explorers whose full grid is too large to pre-render)."""
    names = list(explorer.controls)
    if not one_at_a_time:
        sizes = [range(len(explorer.controls[n].options)) for n in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*sizes)]
    base = default_state(explorer)
    varied = [
        {**base, name: i}
        for name in names
        for i in range(len(explorer.controls[name].options))
        if i != base[name]
    ]
    return [base, *varied]


def static_html(explorer: Explorer, title: str, scale: int = 4, one_at_a_time: bool = False) -> str:
    """The explorer as self-contained HTML and JavaScript, every state pre-rendered: it works
    without a kernel. Without JavaScript the page shows the default state's image, caption and
    a note. With `one_at_a_time`, moving a control resets the others to their defaults. A
    picture that several states share (an interpolation read backwards) is stored once."""
    rendered = Rendered(explorer, scale)
    names = list(explorer.controls)
    images: dict[str, int] = {}  # each distinct picture once: states often share one
    frames = {}
    for state in states(explorer, one_at_a_time):
        picture, caption = rendered(state)
        uri = "data:image/png;base64," + base64.b64encode(picture).decode()
        key = ",".join(str(state[n]) for n in names)
        frames[key] = [images.setdefault(uri, len(images)), caption]
    base = default_state(explorer)
    index, caption = frames[",".join(str(base[n]) for n in names)]
    first = [list(images)[index], caption]
    uid = "explorer-" + uuid.uuid4().hex[:8]
    rows = []
    for name in names:
        control = explorer.controls[name]
        numeric = all(isinstance(value, float) for _, value in control.options)
        label = html.escape(control.label)
        if numeric:
            field = (
                f'<input type="range" data-name="{name}" min="0" '
                f'max="{len(control.options) - 1}" step="1" value="{control.default}">'
            )
        else:
            options = "".join(
                f'<option value="{i}"{" selected" if i == control.default else ""}>'
                f"{html.escape(text)}</option>"
                for i, (text, _) in enumerate(control.options)
            )
            field = f'<select data-name="{name}">{options}</select>'
        rows.append(f"<label>{label} {field}</label>")
    note = "one control at a time; the others return to their defaults. " if one_at_a_time else ""
    return f"""<div class="vaebook-explorer" id="{uid}" data-title="{html.escape(title)}">
<p><strong>{html.escape(title)}</strong></p>
<div class="explorer-controls" style="display:none">{"<br>".join(rows)}</div>
<img class="explorer-image" src="{first[0]}" alt="{html.escape(title)}"
 style="image-rendering:pixelated;min-width:192px;max-width:100%">
<p class="explorer-caption">{html.escape(first[1])}</p>
<p class="explorer-note"><em>A static picture of the default state: the controls need
JavaScript (or run the notebook for the live version).</em></p>
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var images = {json.dumps(list(images))};
  var frames = {json.dumps(frames)};
  var names = {json.dumps(names)};
  var defaults = {json.dumps([base[n] for n in names])};
  var oneAtATime = {json.dumps(one_at_a_time)};
  var inputs = names.map(function (n) {{ return root.querySelector('[data-name="' + n + '"]'); }});
  root.querySelector(".explorer-controls").style.display = "block";
  root.querySelector(".explorer-note").innerHTML = "<em>{note}Pre-rendered: no kernel needed.</em>";
  function show(changed) {{
    if (oneAtATime) inputs.forEach(function (input, i) {{
      if (input !== changed) input.value = String(defaults[i]);
    }});
    var frame = frames[inputs.map(function (input) {{ return input.value; }}).join(",")];
    root.querySelector(".explorer-image").src = images[frame[0]];
    root.querySelector(".explorer-caption").textContent = frame[1];
  }}
  inputs.forEach(function (input) {{
    input.addEventListener("input", function () {{ show(input); }});
    input.addEventListener("change", function () {{ show(input); }});
  }});
}})();
</script>
</div>"""
