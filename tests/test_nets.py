import math

import pytest
import torch
from conftest import REPO, synthetic_images

from vaebook.data import ImageData
from vaebook.models import FAVAE, VAE, FAVAEConfig, InfoCatVAE, InfoCatVAEConfig, VAEConfig
from vaebook.nets import (
    ACTIVATIONS,
    CNNClassifier,
    ConvDecoder,
    ConvEncoder,
    Dropout,
    FoldConvTranspose2d,
    GaussianHead,
    UnfoldConv2d,
    conv_sizes,
    keep_mask,
    make_decoder,
    make_encoder,
    mlp,
    unfold_patches,
)
from vaebook.train import TrainConfig, Trainer, load_checkpoint, load_state

# shapes other than the paper's: square and not, powers of two and not, the smallest allowed
ANY_SHAPES = [(1, 64, 64), (3, 32, 32), (1, 112, 92), (3, 16, 20)]


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), *ANY_SHAPES])
def test_encoder_decoder_shapes(arch, shape):
    encoder = make_encoder(shape, arch, (64,))
    decoder = make_decoder(8, shape, arch, (64,))
    head = GaussianHead(encoder.out_features, 8)
    x = torch.rand(5, *shape)
    mean, logvar = head(encoder(x))
    assert mean.shape == logvar.shape == (5, 8)
    assert decoder(mean).shape == (5, *shape)


def test_conv_refuses_shapes_it_cannot_take_and_names_the_fix():
    for make in (
        lambda shape: make_encoder(shape, "conv", (64,)),
        lambda shape: make_decoder(4, shape, "conv", (64,)),
    ):
        with pytest.raises(ValueError, match=r"got 2 in .*x\.mean\(1, keepdim=True\).*'mlp'"):
            make((2, 32, 32))
        with pytest.raises(ValueError, match=r"x\.expand\(-1, 3, -1, -1\)"):
            make((4, 32, 32))
        with pytest.raises(ValueError, match=r">= 16, got 8x8 .*resize the images.*'mlp'"):
            make((1, 8, 8))
        with pytest.raises(ValueError, match=r">= 16, got 32x12 .*size=\(32, 16\)"):
            make((3, 32, 12))
    assert make_encoder((2, 8, 8), "mlp", (64,)).out_features == 64  # the MLP takes any shape


# (key, shape) of every parameter of the paper's networks, read off the code that trained the
# committed checkpoints: the general construction must keep them
PAPER_ENCODERS = {
    (1, 28, 28): [
        ("net.0.weight", (32, 1, 4, 4)),
        ("net.0.bias", (32,)),
        ("net.2.weight", (64, 32, 4, 4)),
        ("net.2.bias", (64,)),
        ("net.5.weight", (256, 3136)),
        ("net.5.bias", (256,)),
    ],
    (3, 64, 64): [
        ("net.0.weight", (32, 3, 4, 4)),
        ("net.0.bias", (32,)),
        ("net.2.weight", (32, 32, 4, 4)),
        ("net.2.bias", (32,)),
        ("net.4.weight", (64, 32, 4, 4)),
        ("net.4.bias", (64,)),
        ("net.6.weight", (64, 64, 4, 4)),
        ("net.6.bias", (64,)),
        ("net.9.weight", (256, 1024)),
        ("net.9.bias", (256,)),
    ],
}
PAPER_DECODERS = {  # latent_dim 20
    (1, 28, 28): [
        ("net.0.weight", (256, 20)),
        ("net.0.bias", (256,)),
        ("net.2.weight", (3136, 256)),
        ("net.2.bias", (3136,)),
        ("net.5.weight", (64, 32, 4, 4)),
        ("net.5.bias", (32,)),
        ("net.7.weight", (32, 1, 4, 4)),
        ("net.7.bias", (1,)),
    ],
    (3, 64, 64): [
        ("net.0.weight", (256, 20)),
        ("net.0.bias", (256,)),
        ("net.2.weight", (1024, 256)),
        ("net.2.bias", (1024,)),
        ("net.5.weight", (64, 64, 4, 4)),
        ("net.5.bias", (64,)),
        ("net.7.weight", (64, 32, 4, 4)),
        ("net.7.bias", (32,)),
        ("net.9.weight", (32, 32, 4, 4)),
        ("net.9.bias", (32,)),
        ("net.11.weight", (32, 3, 4, 4)),
        ("net.11.bias", (3,)),
    ],
}


def _shapes(net: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(value.shape)) for key, value in net.state_dict().items()]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_paper_shapes_keep_the_papers_networks(shape):
    assert _shapes(ConvEncoder(shape)) == PAPER_ENCODERS[shape]
    assert _shapes(ConvDecoder(20, shape)) == PAPER_DECODERS[shape]
    # every convolution of the paper's nets is 4x4 stride 2 padding 1, no output padding
    for net in (ConvEncoder(shape), ConvDecoder(20, shape)):
        for layer in net.modules():
            if isinstance(layer, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                assert layer.kernel_size == (4, 4) and layer.stride == (2, 2)
                assert layer.padding == (1, 1) and layer.output_padding == (0, 0)


@pytest.mark.parametrize(
    "name, model, config",
    [
        ("infocatvae-fashion-mnist-ours-conv", InfoCatVAE, InfoCatVAEConfig),  # (1, 28, 28)
        ("favae-condition", FAVAE, FAVAEConfig),  # (3, 64, 64)
    ],
)
def test_committed_conv_checkpoints_still_load(name, model, config):
    path = REPO / "checkpoints" / f"{name}.pt"
    state = load_state(path)
    assert state["model_config"]["arch"] == "conv"
    load_checkpoint(path, model(config(**state["model_config"])))


def test_conv_sizes_halve_each_side_until_it_is_below_8():
    assert conv_sizes((1, 28, 28)) == [(28, 28), (14, 14), (7, 7)]
    assert conv_sizes((1, 112, 92)) == [(112, 92), (56, 46), (28, 23), (14, 11), (7, 5)]
    # a side that is already small keeps its size while the other one shrinks
    assert conv_sizes((1, 16, 64)) == [(16, 64), (8, 32), (4, 16), (4, 8), (4, 4)]
    encoder, decoder = ConvEncoder((1, 16, 64), 8), ConvDecoder(2, (1, 16, 64), 8)
    assert decoder(encoder(torch.rand(2, 1, 16, 64))[:, :2]).shape == (2, 1, 16, 64)


def _train_one_epoch(model: torch.nn.Module, data) -> dict[str, list[float]]:
    config = TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False)
    return Trainer(model, data, config).fit()


# one epoch on 16 random images: a collapsed KL term is expected, not a fault
@pytest.mark.filterwarnings("ignore:the KL term averaged")
@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 32, 32), (1, 112, 92)])
def test_conv_models_train_a_step_at_any_image_shape(shape):
    images = synthetic_images(16, shape)
    labels = torch.arange(16) % 4
    vae = VAE(VAEConfig(image_shape=shape, arch="conv", hidden=(64,), latent_dim=4))
    history = _train_one_epoch(vae, ImageData(images))
    assert math.isfinite(history["total"][-1])
    assert vae.reconstruct(images[:3]).shape == vae.sample(3).shape == (3, *shape)
    config = InfoCatVAEConfig(image_shape=shape, arch="conv", hidden=(64,), categories=4)
    infocat = InfoCatVAE(config)
    history = _train_one_epoch(infocat, ImageData(images, labels))
    assert math.isfinite(history["total"][-1])
    assert infocat.decoder(torch.randn(3, config.latent_dim)).shape == (3, *shape)


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="'mlp' or 'conv'"):
        make_decoder(4, (1, 28, 28), "resnet", (64,))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_leaky_relu_nets_pass_gradient_where_relu_nets_are_dead(arch):
    # every unit pushed negative: ReLU nets give the input no gradient, leaky ones still do
    shape = (3, 64, 64)
    for activation, alive in (("relu", False), ("leaky_relu", True)):
        torch.manual_seed(0)
        encoder = make_encoder(shape, arch, (32,), activation)
        decoder = make_decoder(4, shape, arch, (32,), activation)
        for net in (encoder, decoder):
            for name, p in net.named_parameters():
                if name.endswith("bias"):
                    torch.nn.init.constant_(p, -100.0)
        x, z = torch.rand(2, *shape, requires_grad=True), torch.randn(2, 4, requires_grad=True)
        (encoder(x).sum() + decoder(z).sum()).backward()
        assert (x.grad.abs().sum() > 0) == alive and (z.grad.abs().sum() > 0) == alive


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be one of"):
        make_encoder((1, 28, 28), "conv", (64,), "gelu")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 112, 92), (3, 32, 20)])
def test_the_classifier_reads_images_of_any_size(shape):
    classifier = CNNClassifier(shape, classes=5)
    assert classifier(torch.rand(2, *shape)).shape == (2, 5)


def test_dropout_keeps_each_unit_with_probability_1_minus_p_and_rescales_it():
    dropout = Dropout(0.25)
    x = torch.ones(400, 500, requires_grad=True)
    y = dropout(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, y.detach())  # the same mask and scale
    assert not (dropout(x) == y).all()  # a fresh mask every call
    torch.testing.assert_close(dropout.eval()(x), x)


@pytest.mark.parametrize("p", [0.25, 0.1, 0.9])
def test_keep_mask_keeps_with_probability_1_minus_p_in_every_16_bit_slice(p):
    torch.manual_seed(0)
    mask = keep_mask((999, 401), p)  # a count that is not a multiple of four
    assert mask.shape == (999, 401) and mask.dtype == torch.bool
    slices = mask.flatten()[: 4 * (mask.numel() // 4)].view(-1, 4).float().mean(0)
    # each of a 64-bit draw's four slices, the high bits included, keeps 1 - p of the units
    torch.testing.assert_close(slices, torch.full((4,), 1 - p), atol=0.005, rtol=0)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dropout_before_the_activation_equals_dropout_after_it(activation):
    x = torch.randn(64, 300, requires_grad=True)
    outputs, grads = [], []
    for order in (
        (Dropout(0.25), ACTIVATIONS[activation]()),
        (ACTIVATIONS[activation](), Dropout(0.25)),
    ):
        torch.manual_seed(0)  # the same mask
        y = torch.nn.Sequential(*order)(x)
        outputs.append(y)
        grads.append(torch.autograd.grad(y.pow(2).sum(), x)[0])
    assert (outputs[0] == 0).float().mean() > 0.2  # the mask dropped units
    torch.testing.assert_close(outputs[0], outputs[1])  # LeakyReLU: to rounding
    torch.testing.assert_close(grads[0], grads[1])


def test_a_compiled_mlp_with_dropout_keeps_no_bool_mask_for_backward():
    def saved_dtypes(net: torch.nn.Module) -> list[torch.dtype]:
        dtypes = []
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t: dtypes.append(t.dtype) or t, lambda t: t
        ):
            torch.compile(net)(torch.randn(16, 20)).sum().backward()
        return dtypes

    torch._dynamo.reset()
    dropout_after_relu = torch.nn.Sequential(
        torch.nn.Linear(20, 64), torch.nn.ReLU(), Dropout(0.25), torch.nn.Linear(64, 30)
    )
    assert torch.bool in saved_dtypes(dropout_after_relu)  # ReLU's mask: the check can fail
    assert torch.bool not in saved_dtypes(mlp([20, 64, 30], last_activation=False, dropout=0.25))


def test_dropout_compiles_into_one_graph():
    torch._dynamo.reset()
    explained = torch._dynamo.explain(Dropout(0.25))(torch.ones(64, 32))
    assert explained.graph_count == 1 and explained.graph_break_count == 0


@pytest.mark.parametrize(
    "settings, size",
    [
        ({"kernel_size": 4, "stride": 2, "padding": 1}, (14, 14)),  # the 28x28 decoders' last
        ({"kernel_size": 4, "stride": 2, "padding": 0}, (6, 6)),
        ({"kernel_size": (4, 3), "stride": (2, 1), "padding": 1, "output_padding": (1, 0)}, (7, 5)),
        ({"kernel_size": 3, "stride": 1, "padding": 1, "bias": False}, (5, 9)),
    ],
)
def test_fold_transposed_convolution_equals_pytorchs(settings, size):
    torch.manual_seed(0)
    fold = FoldConvTranspose2d(16, 1, **settings)
    plain = torch.nn.ConvTranspose2d(16, 1, **settings)
    plain.load_state_dict(fold.state_dict())
    x = torch.randn(5, 16, *size, requires_grad=True)
    outputs = [layer(x) for layer in (fold, plain)]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(outputs[0])
    grads = [
        torch.autograd.grad(out, [*layer.parameters(), x], grad_out)
        for out, layer in zip(outputs, (fold, plain), strict=True)
    ]
    for ours, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_decoders_use_the_fold_layer_for_one_channel_only():
    grey = ConvDecoder(8, (1, 28, 28))
    colour = ConvDecoder(8, (3, 32, 32))
    assert isinstance(grey.net[-1], FoldConvTranspose2d)
    assert type(colour.net[-1]) is torch.nn.ConvTranspose2d


@pytest.mark.parametrize("needs_input_grad", [False, True])
@pytest.mark.parametrize("settings", [{"stride": 2, "padding": 1}, {"padding": 2, "bias": False}])
def test_unfold_convolution_equals_pytorchs(settings, needs_input_grad):
    torch.manual_seed(0)
    ours, plain = UnfoldConv2d(1, 16, 5, **settings), torch.nn.Conv2d(1, 16, 5, **settings)
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(6, 1, 28, 23).requires_grad_(needs_input_grad)
    outputs = [layer(x) for layer in (ours, plain)]
    torch.testing.assert_close(outputs[0], outputs[1])
    grad_out = torch.randn_like(outputs[0])
    grads = [
        torch.autograd.grad(out, [*layer.parameters(), *[x][: int(needs_input_grad)]], grad_out)
        for out, layer in zip(outputs, (ours, plain), strict=True)
    ]
    for mine, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def test_encoders_use_the_unfold_layer_from_one_channel_only():
    assert isinstance(ConvEncoder((1, 28, 28), 64).net[0], UnfoldConv2d)
    assert type(ConvEncoder((3, 32, 32), 64).net[0]) is torch.nn.Conv2d


@pytest.mark.parametrize(
    "kernel, stride, padding",
    [((5, 5), (2, 2), (1, 1)), ((4, 3), (2, 1), (1, 0)), ((3, 3), (1, 1), (0, 0))],
)
def test_unfold_patches_equal_pytorchs_unfold(kernel, stride, padding):
    x = torch.randn(3, 2, 13, 11)
    expected = torch.nn.functional.unfold(x, kernel, padding=padding, stride=stride)
    assert torch.equal(unfold_patches(x, kernel, stride, padding), expected)
