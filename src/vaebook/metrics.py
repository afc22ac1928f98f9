"""Metrics used across chapters: clustering accuracy with Hungarian matching, a latent probe."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from vaebook.checks import class_indices
from vaebook.probability import reparameterize


def clustering_accuracy(clusters: Tensor, labels: Tensor) -> tuple[float, dict[int, int]]:
    """Accuracy of the best one-to-one matching of clusters to labels (Hungarian algorithm).

    clusters, labels: (N,) integer tensors >= 0 (float or negative values are refused).
    Returns (accuracy, {cluster: label}). With more clusters than labels, the unmatched
    clusters count as errors.
    """
    clusters, labels = torch.as_tensor(clusters), torch.as_tensor(labels)
    if clusters.shape != labels.shape or clusters.dim() != 1:
        hint = ""
        if (1,) in (tuple(clusters.shape[1:]), tuple(labels.shape[1:])):
            hint = "; flatten a column with .squeeze(1)"
        raise ValueError(
            f"clusters and labels must both be (N,), got {tuple(clusters.shape)} and "
            f"{tuple(labels.shape)}{hint}"
        )
    clusters = class_indices(clusters, "clusters").cpu()
    labels = class_indices(labels, "labels").cpu()
    if len(labels) == 0:
        raise ValueError("clustering_accuracy needs at least one example")
    n_clusters, n_labels = int(clusters.max()) + 1, int(labels.max()) + 1
    counts = np.zeros((n_clusters, n_labels), dtype=np.int64)
    np.add.at(counts, (clusters.numpy(), labels.numpy()), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    accuracy = counts[rows, cols].sum() / len(labels)
    return float(accuracy), {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def probe_classifier(
    in_features: int, n_classes: int, hidden: Sequence[int] = (256, 256), batch_norm: bool = True
):
    """The probe of Jha et al. 2018: (Linear, BatchNorm, LeakyReLU 0.2) per hidden size, Linear;
    with ``batch_norm=False`` a plain MLP: (Linear, ReLU) per hidden size, Linear."""
    layers: list[nn.Module] = []
    for size in hidden:
        norm = [nn.BatchNorm1d(size), nn.LeakyReLU(0.2)] if batch_norm else [nn.ReLU()]
        layers += [nn.Linear(in_features, size), *norm]
        in_features = size
    layers.append(nn.Linear(in_features, n_classes))
    return nn.Sequential(*layers)


def _accuracy(model: nn.Module, codes: Tensor, labels: Tensor, batch_size: int) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(codes[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
            for i in range(0, len(codes), batch_size)
        )
    return correct / len(codes)


def latent_probe(
    train_codes: Tensor,
    train_labels: Tensor,
    test_codes: Tensor,
    test_labels: Tensor,
    epochs: int = 30,
    hidden: Sequence[int] = (256, 256),
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    train_logvar: Tensor | None = None,
    test_logvar: Tensor | None = None,
    batch_norm: bool = True,
    val_codes: Tensor | None = None,
    val_labels: Tensor | None = None,
    val_logvar: Tensor | None = None,
) -> dict[str, float]:
    """Train a small MLP classifier on latent codes and report train and test accuracy.

    train_codes: (N, D) float, train_labels: (N,) long >= 0; the same for test and, optionally,
    val (the probe then also reports 'val_accuracy'). High test accuracy means the label can be
    read from the code. With train_logvar (N, D) the codes are the means of Gaussians and every
    epoch trains on a fresh sample (Jha et al.'s protocol for z); with test_logvar (val_logvar)
    the test (val) codes are one sample. ``batch_norm=False``: a plain MLP probe (see
    ``probe_classifier``). Returns {'train_accuracy', 'test_accuracy'} and 'val_accuracy' with
    val codes (train accuracy on the last sample when sampling).
    """
    if (val_codes is None) != (val_labels is None):
        raise ValueError("give val_codes and val_labels together, or neither")
    evaluated = {"test": (test_codes, test_labels, test_logvar)}
    if val_codes is not None:
        evaluated["val"] = (val_codes, val_labels, val_logvar)
    for name, codes, labels in (
        ("train", train_codes, train_labels),
        *((name, codes, labels) for name, (codes, labels, _) in evaluated.items()),
    ):
        if codes.dim() != 2 or labels.shape != (len(codes),):
            hint = ""
            if labels.shape == (len(codes), 1):
                hint = f"; flatten the labels with {name}_labels.squeeze(1)"
            raise ValueError(
                f"{name} codes must be (N, D) with labels (N,), got {tuple(codes.shape)} and "
                f"{tuple(labels.shape)}{hint}"
            )
        if not codes.is_floating_point():
            raise ValueError(f"{name}_codes must be float, got {codes.dtype}; use .float()")
        class_indices(labels, f"{name}_labels")
        if labels.dtype != torch.long:
            raise ValueError(
                f"{name}_labels must be torch.long, got {labels.dtype}; use {name}_labels.long()"
            )
    if any(codes.shape[1] != train_codes.shape[1] for codes, _, _ in evaluated.values()):
        raise ValueError("train, test (and val) codes must have the same dimension")
    for name, codes, logvar in (
        ("train", train_codes, train_logvar),
        *((name, codes, logvar) for name, (codes, _, logvar) in evaluated.items()),
    ):
        if logvar is not None and logvar.shape != codes.shape:
            raise ValueError(
                f"{name}_logvar must have the codes' shape {tuple(codes.shape)}, "
                f"got {tuple(logvar.shape)}"
            )
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        every_label = [train_labels, *(labels for _, labels, _ in evaluated.values())]
        n_classes = 1 + max(int(labels.max()) for labels in every_label)
        model = probe_classifier(train_codes.shape[1], n_classes, hidden, batch_norm)
        model = model.to(train_codes.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        codes = train_codes
        # one sample of each evaluated set's codes, drawn before training as it always was
        evaluated = {
            name: (reparameterize(c, logvar) if logvar is not None else c, labels)
            for name, (c, labels, logvar) in evaluated.items()
        }
        for _ in range(epochs):
            model.train()
            if train_logvar is not None:
                codes = reparameterize(train_codes, train_logvar)
            order = torch.randperm(len(train_codes), generator=generator).to(train_codes.device)
            for i in range(0, len(order), batch_size):
                index = order[i : i + batch_size]
                if len(index) < 2:  # BatchNorm needs two examples
                    continue
                loss = nn.functional.cross_entropy(model(codes[index]), train_labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return {
            "train_accuracy": _accuracy(model, codes, train_labels, batch_size),
            **{
                f"{name}_accuracy": _accuracy(model, c, labels, batch_size)
                for name, (c, labels) in evaluated.items()
            },
        }
