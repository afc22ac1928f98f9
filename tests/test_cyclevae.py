import pytest
import torch
from conftest import REPO

from vaebook.data import ImageData, PairedData, PairSampler, load_images
from vaebook.metrics import latent_probe
from vaebook.nets import (
    NORM_MODES,
    CNNClassifier,
    CycleDecoder,
    CycleEncoder,
    load_authors_cyclevae,
    set_norm_mode,
)
from vaebook.train import load_checkpoint


def test_pair_sampler_gives_same_label_partners_covering_every_class():
    labels = torch.tensor([3, 0, 1, 1, 0, 2, 2, 2, 3, 1, 0, 3])
    sampler = PairSampler(labels)
    generator = torch.Generator().manual_seed(0)
    index = torch.randperm(len(labels), generator=generator).repeat(200)
    partner = sampler.same_label(index, generator)
    assert torch.equal(labels[partner], labels[index]) and (partner != index).all()
    # every example of every class is drawn as somebody's partner
    assert torch.equal(partner.unique(), torch.arange(len(labels)))
    unrelated = sampler.unrelated(index, generator)
    assert (labels[unrelated] != labels[index]).any() and unrelated.max() < len(labels)


def test_paired_batches_hold_the_partners_images():
    images = torch.rand(6, 1, 28, 28)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    batch = PairedData(ImageData(images, labels)).batch(torch.tensor([0, 4]))
    torch.testing.assert_close(batch.x, images[[0, 4]])
    torch.testing.assert_close(batch.partner, images[[2, 5]])  # each class has two examples
    assert batch.unrelated.shape == (2, 1, 28, 28) and batch.labels.tolist() == [0, 2]


def test_pairs_refuse_unlabelled_data_and_lonely_classes():
    with pytest.raises(ValueError, match="pairs need labels"):
        PairedData(ImageData(torch.rand(4, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"label\(s\) \[2\] have a single example"):
        PairSampler(torch.tensor([0, 0, 1, 1, 2]))


AUTHORS = REPO.parent / "shared" / "checkpoints" / "cyclevae-authors-mnist-16-16"


@torch.no_grad()
def _encode(encoder, images: torch.Tensor) -> list[torch.Tensor]:
    """(mean, logvar, s) of every image, 2,000 at a time."""
    chunks = [encoder(images[i : i + 2000]) for i in range(0, len(images), 2000)]
    return [torch.cat(parts) for parts in zip(*chunks, strict=True)]


@pytest.mark.skipif(
    not (AUTHORS / "encoder.pt").exists(),
    reason=f"the authors' released checkpoint is not at {AUTHORS} (see ../shared/checkpoints)",
)
def test_authors_checkpoint_loads_and_gives_the_published_probes():
    """The full protocol (30 probe epochs on all 60,000 codes) is `python -m vaebook reproduce
    cyclevae-authors`; here 5 epochs (15 for the mean of z) on 20,000 codes."""
    encoder, decoder = load_authors_cyclevae(AUTHORS)
    train = load_images("mnist", "train", download=False).subset(
        20_000, torch.Generator().manual_seed(0)
    )
    test = load_images("mnist", "test", download=False)
    probes = {}
    for mode in NORM_MODES:
        set_norm_mode(encoder, mode)
        (mean, logvar, s), (test_mean, test_logvar, test_s) = (
            _encode(encoder, train.images),
            _encode(encoder, test.images),
        )
        args = dict(train_labels=train.labels, test_labels=test.labels, epochs=5)
        probes[mode, "z"] = latent_probe(
            mean, test_codes=test_mean, train_logvar=logvar, test_logvar=test_logvar, **args
        )["test_accuracy"]
        if mode == "per-image":
            # the mean of z leaks the class slowly: give its probe more epochs
            probes[mode, "mean"] = latent_probe(
                mean, test_codes=test_mean, **{**args, "epochs": 15}
            )["test_accuracy"]
            probes[mode, "s"] = latent_probe(s, test_codes=test_s, **args)["test_accuracy"]
    # published: sampled z 17.1%, s 98.4%, mean of z 65% after 30 epochs; running stats: z 34%
    assert probes["per-image", "z"] < 0.22, probes
    assert probes["per-image", "s"] > 0.975, probes
    assert 0.3 < probes["per-image", "mean"] < 0.75, probes
    assert probes["running", "z"] > 0.27, probes
    # the decoder loaded too: an independent classifier reads the class of s in the swapped image
    set_norm_mode(encoder, "per-image")
    classifier = CNNClassifier().eval()
    load_checkpoint(REPO / "checkpoints" / "classifier-mnist.pt", classifier)
    with torch.no_grad():
        mean, _, s = encoder(test.images[:500])
        other = torch.roll(torch.arange(500), 1)
        read = classifier(decoder(mean[other], s)).argmax(1)
    assert (read == test.labels[:500]).float().mean() > 0.85  # paper's swap grid: class from s
    assert (read == test.labels[other]).float().mean() < 0.2  # and not from z


def test_norm_modes_per_image_and_running_statistics():
    encoder = CycleEncoder()
    x = torch.rand(4, 1, 28, 28)
    encoder.train()
    training_codes = encoder(x)
    running_mean = encoder.features.norm1.running_mean.clone()
    encoder.eval()
    torch.testing.assert_close(encoder(x), training_codes)  # per-image: the same as training
    assert torch.equal(encoder.features.norm1.running_mean, running_mean)  # and no update
    set_norm_mode(encoder, "running")
    assert not torch.allclose(encoder(x)[2], training_codes[2])
    with pytest.raises(ValueError, match="per-image"):
        set_norm_mode(encoder, "batch")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_cycle_networks_shapes(shape):
    encoder, decoder = CycleEncoder(shape, 8, 5), CycleDecoder(shape, 8, 5)
    mean, logvar, s = encoder(torch.rand(2, *shape))
    assert mean.shape == logvar.shape == (2, 8) and s.shape == (2, 5)
    image = decoder(mean, s)
    assert image.shape == (2, *shape) and 0 <= image.min() and image.max() <= 1


def test_probe_on_sampled_codes_draws_a_fresh_sample_each_epoch():
    labels = torch.arange(2).repeat(200)
    means = labels[:, None].float().expand(400, 2) * 0.1  # the label is in the mean...
    logvar = torch.full_like(means, 4.0)  # ...drowned by the noise of a sample
    args = dict(train_labels=labels, test_codes=means, test_labels=labels, epochs=3)
    assert latent_probe(means, **args)["test_accuracy"] == 1.0
    sampled = latent_probe(means, train_logvar=logvar, test_logvar=logvar, **args)
    assert sampled["test_accuracy"] < 0.65
    with pytest.raises(ValueError, match="train_logvar must have the codes' shape"):
        latent_probe(means, train_logvar=logvar[:, :1], **args)
