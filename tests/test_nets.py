import pytest
import torch

from vaebook.nets import GaussianHead, make_decoder, make_encoder


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_encoder_decoder_shapes(arch, shape):
    encoder = make_encoder(shape, arch, (64,))
    decoder = make_decoder(8, shape, arch, (64,))
    head = GaussianHead(encoder.out_features, 8)
    x = torch.rand(5, *shape)
    mean, logvar = head(encoder(x))
    assert mean.shape == logvar.shape == (5, 8)
    assert decoder(mean).shape == (5, *shape)


def test_conv_refuses_unsupported_shape():
    with pytest.raises(ValueError, match="resize the images or use arch='mlp'"):
        make_encoder((1, 32, 32), "conv", (64,))


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
