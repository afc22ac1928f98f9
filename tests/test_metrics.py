import pytest
import torch

from vaebook.metrics import clustering_accuracy, latent_probe


def test_clustering_accuracy_is_invariant_to_renaming_clusters():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    accuracy, mapping = clustering_accuracy(torch.tensor([2, 2, 0, 0, 1, 1]), labels)
    assert accuracy == 1.0 and mapping == {2: 0, 0: 1, 1: 2}


def test_clustering_accuracy_counts_the_best_matching():
    # cluster 0 holds labels (0, 0, 1), cluster 1 holds (1, 1, 0): best is 0->0, 1->1, 4 of 6
    accuracy, _ = clustering_accuracy(
        torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 0, 1, 1, 1, 0])
    )
    assert accuracy == pytest.approx(4 / 6)


def test_clustering_accuracy_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(N,\)"):
        clustering_accuracy(torch.zeros(3), torch.zeros(4))


def _blobs(n, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    centres = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
    return centres[labels] + torch.randn(n, 2, generator=generator), labels


def test_latent_probe_reads_a_separable_label():
    (train, train_y), (test, test_y) = _blobs(600, 0), _blobs(300, 1)
    result = latent_probe(train, train_y, test, test_y, epochs=10)
    assert result["test_accuracy"] > 0.95 and result["train_accuracy"] > 0.95


def test_latent_probe_is_at_chance_on_noise():
    generator = torch.Generator().manual_seed(0)
    train, test = torch.randn(600, 4, generator=generator), torch.randn(600, 4, generator=generator)
    train_y, test_y = (
        torch.randint(0, 4, (600,), generator=generator),
        torch.randint(0, 4, (600,), generator=generator),
    )
    assert latent_probe(train, train_y, test, test_y, epochs=5)["test_accuracy"] < 0.35


def test_latent_probe_refuses_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        latent_probe(
            torch.zeros(5), torch.zeros(5).long(), torch.zeros(5, 2), torch.zeros(5).long()
        )


def test_perfect_clustering_scores_one_and_negative_or_float_labels_are_refused():
    labels = torch.arange(5).repeat_interleave(4)  # 0..K-1
    accuracy, mapping = clustering_accuracy(labels.flip(0), labels)
    assert accuracy == 1.0 and mapping == {c: 4 - c for c in range(5)}
    # -1..K-2 would wrap -1 around to the last cluster: refused, not scored 0.67
    with pytest.raises(ValueError, match=r"labels must be >= 0.*minimum -1.*torch\.unique"):
        clustering_accuracy(labels, labels - 1)
    with pytest.raises(ValueError, match=r"clusters must be >= 0"):
        clustering_accuracy(labels - 1, labels)
    with pytest.raises(ValueError, match=r"labels\.long\(\)"):
        clustering_accuracy(labels, labels.float())
    with pytest.raises(ValueError, match=r"clusters\.long\(\)"):
        clustering_accuracy(labels.float(), labels)
    with pytest.raises(ValueError, match=r"squeeze\(1\)"):
        clustering_accuracy(labels[:, None], labels)
    assert clustering_accuracy(labels.int().numpy(), labels.tolist())[0] == 1.0  # any integers


def test_latent_probe_refuses_float_negative_and_column_labels():
    codes, labels = torch.randn(8, 2), torch.arange(8) % 2
    with pytest.raises(ValueError, match=r"train_labels\.long\(\)"):
        latent_probe(codes, labels.float(), codes, labels, epochs=1)
    with pytest.raises(ValueError, match=r"test_labels must be >= 0"):
        latent_probe(codes, labels, codes, labels - 1, epochs=1)
    with pytest.raises(ValueError, match=r"test_labels\.long\(\)"):
        latent_probe(codes, labels, codes, labels.int(), epochs=1)
    with pytest.raises(ValueError, match=r"train_labels\.squeeze\(1\)"):
        latent_probe(codes, labels[:, None], codes, labels, epochs=1)
    with pytest.raises(ValueError, match=r"train_codes must be float"):
        latent_probe(codes.long(), labels, codes, labels, epochs=1)
