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
