import pytest
import torch

from vaebook.data import ImageData, PairedData, PairSampler


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
