"""Each explorer driven as a reader would: set a control, read the image, check it changed."""

import base64
import json
import re

import pytest
import torch
from conftest import synthetic_images

from vaebook import fa, widgets
from vaebook.models import VAE, CycleVAE, CycleVAEConfig, InfoCatVAE, InfoCatVAEConfig, VAEConfig


@pytest.fixture(scope="module")
def infocat():
    torch.manual_seed(0)
    return InfoCatVAE(InfoCatVAEConfig(categories=4, delta=2, hidden=(32,)))


def cycle_model():
    torch.manual_seed(0)
    return CycleVAE(CycleVAEConfig(unspecified_dim=4, specified_dim=4))


def small_layer():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(80, 2, generator=generator)
    views = {
        "x": fa.Real(z @ torch.randn(2, 6, generator=generator) + 0.1 * torch.randn(80, 6)),
        "y": fa.Real(z[:, :1] @ torch.randn(1, 3, generator=generator) + 0.1 * torch.randn(80, 3)),
    }
    return fa.SSHIBA(views, k=6)


def explorers():
    torch.manual_seed(0)
    infocat = InfoCatVAE(InfoCatVAEConfig(categories=4, delta=2, hidden=(32,)))
    names = {"colour": ["red", "green", "blue"], "size": ["small", "large"]}

    def generate(values):  # a stand-in generator: the colour picks the channel, size the area
        image = torch.zeros(3, 16, 16)
        side = 4 if values["size"] == 0 else 12
        image[values["colour"], :side, :side] = 1.0
        return image

    def read(image):
        return {"colour": int(image.sum((1, 2)).argmax()), "size": int(image.sum() > 40)}

    return {
        "traversal": widgets.TraversalExplorer(infocat, steps=5),
        "units": widgets.UnitExplorer(
            VAE(VAEConfig(latent_dim=4, hidden=(32,))), synthetic_images(3), units=[0, 2]
        ),
        "interpolation": widgets.InterpolationExplorer(infocat, steps=5),
        "swap": widgets.SwapExplorer(cycle_model(), synthetic_images(4), prior_samples=2),
        "condition": widgets.ConditionExplorer(generate, read, names),
        "ard": widgets.ARDExplorer(widgets.ard_snapshots(small_layer(), 6, every=2), ["x", "y"]),
    }


EXPLORERS = explorers()
SHAPES = {
    "traversal": (1, 28, 28),
    "units": (1, 28, 28),
    "interpolation": (1, 28, 28),
    "swap": (1, 28, 28),
    "condition": (3, 16, 16),
}


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_moving_a_control_changes_the_image(name):
    explorer = EXPLORERS[name]
    state = widgets.default_state(explorer)
    image, caption = explorer.render(state)
    if name in SHAPES:
        assert image.shape == SHAPES[name]
    assert image.min() >= 0 and image.max() <= 1 and caption
    changed = 0
    for control_name, control in explorer.controls.items():
        other = (state[control_name] + len(control.options) - 1) % len(control.options)
        moved, _ = explorer.render({**state, control_name: other})
        changed += not torch.equal(moved, image)
    assert changed >= 1, "no control changes the picture"


def test_the_traversal_moves_along_the_mode_and_the_swap_takes_s_and_z_apart():
    traversal = EXPLORERS["traversal"]
    centre = widgets.default_state(traversal)
    assert traversal.controls["offset"].options[centre["offset"]][1] == 0.0  # starts at mu_c
    swap = EXPLORERS["swap"]
    model = swap.model
    with torch.no_grad():
        z, _, s = model.encode(swap.gallery)
        expected = model.decode(z[2:3], s[0:1])[0]
    image, caption = swap.render({"s_from": 0, "z_from": 2})
    torch.testing.assert_close(image, expected)
    assert caption == "s from image 1, z from image 3"


def test_the_condition_explorer_reports_the_readers_verdict():
    image, caption = EXPLORERS["condition"].render({"colour": 2, "size": 1})
    assert image[2].sum() > 0 and caption == "reader: colour blue ✓, size large ✓"


def test_ard_frames_show_factors_being_pruned():
    explorer = EXPLORERS["ard"]
    counts = [a.shape[1] for _, a in explorer.snapshots]
    assert counts[0] == 6 and counts[-1] < 6  # ARD prunes factors two views do not need
    _, caption = explorer.render({"sweep": len(counts) - 1})
    assert f"{counts[-1]} factors kept" in caption


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_the_live_widget_answers_each_control(name):
    box = widgets.live(EXPLORERS[name])
    pictures = [bytes(box.image.value)]
    assert pictures[0].startswith(b"\x89PNG")
    for control in box.controls.values():  # one control at a time, as a reader moves them
        options = len(control.options)
        control.value = (control.value + options - 1) % options
        pictures.append(bytes(box.image.value))
    assert len(set(pictures)) > 1 and box.caption.value


@pytest.mark.parametrize("one_at_a_time", [False, True])
def test_the_static_page_holds_every_state_it_can_show(one_at_a_time):
    explorer = EXPLORERS["traversal"]
    page = widgets.static_html(explorer, "traversal", one_at_a_time=one_at_a_time)
    frames = json.loads(re.search(r"var frames = (\{.*?\});", page).group(1))
    sizes = [len(c.options) for c in explorer.controls.values()]
    expected = 1 + sum(n - 1 for n in sizes) if one_at_a_time else sizes[0] * sizes[1] * sizes[2]
    assert len(frames) == expected
    first = re.search(r'class="explorer-image" src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(first).startswith(b"\x89PNG")  # the default picture without JS
    assert 'style="display:none"' in page  # controls appear only when the script runs


def _page(path, explorers):
    """A bare HTML page holding `widgets.static_html` explorers [(explorer, title, options)]."""
    parts = [widgets.static_html(e, title, **options) for e, title, options in explorers]
    path.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        '<body><main style="max-width: 760px">' + "\n".join(parts) + "</main></body></html>"
    )
    return path.as_uri()


def test_static_explorer_answers_in_a_browser(tmp_path):
    """The book's browser check (`check_explorers_on_page`), tried on a page of small
    explorers: every control of each answers; and on a page where one cannot, it says so."""
    from test_book import _browser, check_explorers_on_page

    shown = [
        (EXPLORERS["traversal"], "traversal", {"scale": 2}),
        (EXPLORERS["interpolation"], "interpolation", {"scale": 2}),
        (EXPLORERS["swap"], "swap", {}),
        (EXPLORERS["condition"], "condition", {"one_at_a_time": True}),
        (EXPLORERS["ard"], "ard", {"scale": 1}),
    ]
    still = widgets.ConditionExplorer(  # a generator that ignores its menus
        lambda values: torch.full((3, 8, 8), 0.5), lambda image: {}, {"colour": ["a", "b"]}
    )
    browser = _browser()
    try:
        found, problems = check_explorers_on_page(
            browser, _page(tmp_path / "explorers.html", shown), str(tmp_path / "explorer")
        )
        found_still, problems_still = check_explorers_on_page(
            browser, _page(tmp_path / "still.html", [(still, "still", {})]), str(tmp_path / "still")
        )
    finally:
        browser.quit()
    assert found == len(shown) and not problems, problems
    assert len(list(tmp_path.glob("explorer-*.png"))) == len(shown)
    assert found_still == 1 and problems_still == [
        "still: no option of control colour changes the picture"
    ]
