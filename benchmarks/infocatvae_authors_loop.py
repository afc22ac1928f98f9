"""The reference for benchmarks/infocatvae_speed.py: one training iteration of InfoCatVAE written
the way the authors' code runs it (github.com/edouardpineau/infoCatVAE: the InfoCatVAE module,
``loss_function`` and ``sampling`` in utils.py, ``train`` in train_test_functions.py).

- Their module: fc1 (784 -> 400), fc21 / fc22 (mean / log-variance on [h, c]), fca (category),
  fc3, fc4; dropout p = 0.25 before the ReLU of the encoder's and the decoder's hidden layer.
- ``encode`` runs fc21 and fc22 once per category on [h, onehot(c)] (K calls each), also when
  it re-encodes the generated samples, and once on [h, q(c|x)] for the reconstruction.
- The loss: BCE on the decoder's probabilities, summed over the batch, + the sum of the
  negative entropies + the q(c|x)-weighted KL, built in a loop over the categories (and an MSE
  they compute but do not use); then ``sampling`` draws 10 images per category in a loop of 10
  draws, the samples are re-encoded, and one backward pass takes ``loss + 100 *
  cross_entropy``; Adam, lr 1e-3, as they step it.

Two things are not theirs, so that the objective is the package's (with AUTHORS_SETTINGS) times
the batch size: the cross-entropy reads the category logits (theirs reads softmax outputs, a
second softmax), and the entropy takes log q(c|x) (theirs log(q + 0.001)). Together they change
the work per step by one elementwise addition on a (B, K) tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaebook.models import InfoCatVAE


class AuthorsInfoCatVAE(nn.Module):
    def __init__(self, package: InfoCatVAE, dropout: float = 0.25, info_weight: float = 100.0):
        """Their module, with the weights of ``package`` (an MLP InfoCatVAE) copied in."""
        super().__init__()
        cfg = package.config
        self.k, self.d, self.p, self.info_weight = (
            cfg.categories,
            cfg.latent_dim,
            dropout,
            info_weight,
        )
        self.register_buffer("prior_means", package.means.clone())  # their mupriorT, transposed
        encoder, decoder = package.encoder.net[0], package.decoder.net
        hidden = encoder.out_features
        self.fc1 = nn.Linear(encoder.in_features, hidden)
        self.fc21 = nn.Linear(hidden + self.k, self.d)
        self.fc22 = nn.Linear(hidden + self.k, self.d)
        self.fca = nn.Linear(hidden, self.k)
        self.fc3 = nn.Linear(self.d, hidden)
        self.fc4 = nn.Linear(hidden, decoder[-1].out_features)
        with torch.no_grad():
            for mine, theirs in ((self.fc1, encoder), (self.fca, package.category_head)):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
            for half, layer in enumerate((self.fc21, self.fc22)):
                rows = slice(half * self.d, (half + 1) * self.d)
                layer.weight.copy_(
                    torch.cat(
                        [package.shared_head.weight[rows], package.category_bias[:, rows].T], 1
                    )
                )
                layer.bias.copy_(package.shared_head.bias[rows])
            for mine, theirs in ((self.fc3, decoder[0]), (self.fc4, decoder[-1])):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)

    def gradients_as_package(self, package: InfoCatVAE) -> dict[str, Tensor]:
        """This module's gradients under the names of ``package``'s parameters."""
        h = self.fc1.out_features
        fc21, fc22 = self.fc21.weight.grad, self.fc22.weight.grad
        layers = {
            package.encoder.net[0]: self.fc1,
            package.category_head: self.fca,
            package.decoder.net[0]: self.fc3,
            package.decoder.net[-1]: self.fc4,
        }
        grads = {
            "shared_head.weight": torch.cat([fc21[:, :h], fc22[:, :h]]),
            "shared_head.bias": torch.cat([self.fc21.bias.grad, self.fc22.bias.grad]),
            "category_bias": torch.cat([fc21[:, h:], fc22[:, h:]]).T,
        }
        for name, module in package.named_modules():
            if module in layers:
                grads[f"{name}.weight"] = layers[module].weight.grad
                grads[f"{name}.bias"] = layers[module].bias.grad
        return grads

    def encode(self, x: Tensor):
        h1 = F.relu(F.dropout(self.fc1(x), p=self.p))
        logits = self.fca(h1)
        a = F.softmax(logits, dim=1)
        eye = torch.eye(self.k, device=x.device)
        allmu = torch.stack(
            [self.fc21(torch.cat((h1, eye[i].repeat(h1.size(0), 1)), 1)) for i in range(self.k)]
        )
        allvar = torch.stack(
            [self.fc22(torch.cat((h1, eye[i].repeat(h1.size(0), 1)), 1)) for i in range(self.k)]
        )
        return (
            self.fc21(torch.cat((h1, a), 1)),
            self.fc22(torch.cat((h1, a), 1)),
            a,
            allmu,
            allvar,
            logits,
        )

    def reparameterize(self, mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
        std = logvar.mul(0.5).exp_()
        eps = std.new_empty(std.size()).normal_() if eps is None else eps
        return eps.mul(std).add_(mu)

    def decode(self, z: Tensor) -> Tensor:
        h3 = F.relu(F.dropout(self.fc3(z), p=self.p))
        return torch.sigmoid(self.fc4(h3))

    def loss_function(self, recon_x, x, a, allmu, allvar) -> tuple[Tensor, ...]:
        """Their loss and its parts: BCE, negative entropy, KL, and the MSE they compute too."""
        bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
        mse = F.mse_loss(recon_x, x)
        kld = 0
        for i in range(self.k):
            prior = self.prior_means[i].repeat(allmu.size(1), 1)
            kl = -0.5 * (1 + allvar[i] - (allmu[i] - prior).pow(2) - allvar[i].exp())
            kld += torch.sum(torch.t(a[:, i].repeat(self.d, 1)) * kl)
        neg_h = torch.sum(a.mul(torch.log(a)))
        return bce + neg_h + kld, bce, neg_h, kld, mse

    def sampling(self, per_category: int, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """noise: (per_category, K, d) standard normal draws; None draws them as they do."""
        allz = []
        for i in range(per_category):
            mu = self.prior_means
            logvar = torch.zeros_like(mu)
            allz.append(self.reparameterize(mu, logvar, None if noise is None else noise[i]))
        sample = self.decode(torch.cat(allz, dim=0))
        labels = torch.arange(0, self.k, device=sample.device).repeat(per_category).long()
        return sample, labels

    def terms(self, x: Tensor, draws: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, ...]:
        """For one batch x (B, 784): their loss + 100 * cross-entropy, the parts they read
        (loss, BCE, negative entropy, KL, cross-entropy) and the generated samples' q(c|x).
        draws: (eps (B, d), noise (per_category, K, d)) to replace the random draws; None: drawn.
        """
        mu, logvar, a, allmu, allvar, _ = self.encode(x)
        z = self.reparameterize(mu, logvar, None if draws is None else draws[0])
        loss, bce, neg_h, kld, _ = self.loss_function(self.decode(z), x, a, allmu, allvar)
        sample, labels = self.sampling(10, None if draws is None else draws[1])
        _, _, sample_a, _, _, logits = self.encode(sample)
        cross_entropy = F.cross_entropy(logits, labels)
        total = loss + self.info_weight * cross_entropy
        return total, (loss, bce, neg_h, kld, cross_entropy), sample_a

    def objective(self, x: Tensor, draws: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Their loss + 100 * cross-entropy for one batch x (B, 784) (see ``terms``)."""
        return self.terms(x, draws)[0]


def authors_step(model: AuthorsInfoCatVAE, x: Tensor, optimizer) -> None:
    """One iteration of their ``train``: zero_grad, the objective, backward, their per-batch
    reads of five numbers (``.data[0]``, here ``.item()``), step, and the predicted categories
    of the generated samples (``torch.max(a, 1)``)."""
    optimizer.zero_grad()
    total, parts, sample_a = model.terms(x.view(x.size(0), -1))
    total.backward()
    for part in parts:
        part.item()
    optimizer.step()
    torch.max(sample_a, 1)
