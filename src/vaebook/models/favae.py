"""FA-VAE (Guerrero-Lopez et al. 2022, arXiv 2207.09185): VAEs tied by a factor-analysis layer.

Every image view m has its own VAE, encoder q(h | x) = N(mean, diag var) and decoder p(x | h).
The codes h^(m) of all image views are the latent views of one Bayesian factor-analysis model
(`vaebook.fa.SSHIBA`), beside label views (Binary/Multilabel/Categorical) and real views:

    z_n ~ N(0, I_K),   h_n^(m) = W_m z_n + b_m + noise,   noise ~ N(0, tau_m^-1 I)

so the prior of VAE m for row n is not N(0, I) but the factor-analysis prediction
N(<z_n><W_m>^T + <b_m>, <tau_m>^-1 I) (`SSHIBA.prior_moments`), and its loss per row is

    -E_q(h|x)[log p(x | h)] + beta * KL(q(h | x) || N(<z_n><W_m>^T + <b_m>, <tau_m>^-1 I)).

With `FAVAEConfig(prior_from="side")` the <z_n> of the prior is inferred from row n's side views
alone (`SSHIBA.z_from`), not from every view: the KL then pulls each code towards what its labels
predict through the linear layer, which is what generation from labels decodes. On Sprites it
made both directions worse with categorical label views, and with the labels as real views of
their one-hot codes it made the codes linear in the labels (chapter 8). The default, 'all', is
the paper's.

Training alternates (`vaebook.train.fit_rounds` with a `FAVAESchedule`, one round being
`FAVAE.update_round`): factor-analysis sweeps with the VAEs fixed, then VAE epochs against the
refreshed prior, then the latent views refreshed from the encoders. Prediction goes through the
shared Z: labels from images, images from labels, one image view from another, with all factors
or only some (e.g. the shared ones).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vaebook import fa
from vaebook.data import FAVAEData, as_float_images
from vaebook.models.vae import VAE, VAEConfig
from vaebook.probability import kl_normal, reparameterize
from vaebook.train import NonFiniteLossError, RoundSchedule

PRIOR_SOURCES = ("all", "side")
COLLAPSED_FACTORS = 2  # a layer with this many factors or fewer ties the views by almost nothing


class FactorCollapseWarning(UserWarning):
    """ARD pruned the factor-analysis layer down to one or two factors."""


@dataclass
class FAVAEConfig:
    image_views: tuple[str, ...] = ("image",)  # one VAE per name
    image_shape: tuple[int, int, int] = (3, 64, 64)  # shared by the image views
    latent_dim: int = 16  # D of every VAE's code h
    hidden: tuple[int, ...] = (256,)
    arch: str = "conv"  # 'mlp' or 'conv'
    activation: str = "relu"  # of the VAEs' hidden layers: 'relu' or 'leaky_relu'
    likelihood: str = "bernoulli"  # 'bernoulli' (x in [0, 1]) or 'gaussian'
    beta: float = 1.0  # weight of the KL term once the schedule's ramp is over
    factors: int = 20  # K of the factor-analysis layer at its first round; ARD prunes it
    fa_rotate: bool = True  # the rotation step of SSHIBA after every sweep
    # 'all': each row's Z, hence the VAEs' prior, from every view (the paper); 'side': from the
    # side views only, so the KL pulls each code towards what its labels predict linearly
    prior_from: str = "all"
    seed: int = 0  # for the factor-analysis layer's initial Z

    def __post_init__(self):
        from vaebook.checks import require_choice, require_int  # this method's own import

        self.image_views = tuple(self.image_views)
        self.image_shape = tuple(self.image_shape)
        self.hidden = tuple(self.hidden)
        if not self.image_views or len(set(self.image_views)) != len(self.image_views):
            raise ValueError(
                f"image_views must be distinct names, at least one, got {self.image_views}"
            )
        bad = [n for n in self.image_views if not (isinstance(n, str) and n.isidentifier())]
        if bad:
            raise ValueError(f"image view names must be identifiers (letters, _), got {bad}")
        # the VAEs' fields (image_shape, latent_dim, hidden, arch, activation, likelihood,
        # beta): their config checks them, each message naming the field and a valid value
        self.vae_config()
        require_int("factors", self.factors, 1, example=20)
        require_choice("prior_from", self.prior_from, PRIOR_SOURCES)
        require_int("seed", self.seed, 0, example=0)

    def vae_config(self) -> VAEConfig:
        """The configuration of every image view's VAE."""
        return VAEConfig(
            image_shape=self.image_shape,
            latent_dim=self.latent_dim,
            hidden=self.hidden,
            arch=self.arch,
            activation=self.activation,
            likelihood=self.likelihood,
            beta=self.beta,
        )


@dataclass
class FAVAESchedule(RoundSchedule):
    """FA-VAE's alternating schedule, for `vaebook.train.fit_rounds`.

    Warm-up: VAE epochs against N(0, I), so that the first latent views carry information: ARD
    prunes the factors that the first sweeps find no use for, and a pruned factor never comes
    back, so a warm-up too short for the encoders to pick up what the labels describe leaves
    FA-VAE with one or two factors and no conditioning. Then `rounds` times: factor-analysis
    sweeps (the first round from SSHIBA's PCA start with `first_sweeps`, later ones
    warm-started with `sweeps`), `epochs_per_round` VAE epochs against the refreshed prior,
    latent views refreshed from the encoders. With `regrow`, every later round first gives the
    layer back the factors ARD pruned (`SSHIBA.grow` to `FAVAEConfig.factors`), so that codes
    which learn more during the rounds than before the first one get factors; the final refit
    adds none. The KL weight ramps as `RoundSchedule` says.
    """

    first_sweeps: int = 50
    sweeps: int = 5
    regrow: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.first_sweeps < 1 or self.sweeps < 1:
            raise ValueError(
                f"need first_sweeps and sweeps >= 1, got {self.first_sweeps}, {self.sweeps}"
            )


class FAVAE(nn.Module):
    """One VAE per image view (`self.vaes[name]`, a `vaebook.models.VAE`) and the factor-analysis
    layer `self.fa` (a `vaebook.fa.SSHIBA`, None before the first round).

    Until the layer exists every VAE's prior is N(0, I), so FAVAE is then a set of vanilla VAEs.
    """

    def __init__(self, config: FAVAEConfig | None = None):
        super().__init__()
        self.config = config = config or FAVAEConfig()
        self.vaes = nn.ModuleDict({name: VAE(config.vae_config()) for name in config.image_views})
        self.fa: fa.SSHIBA | None = None
        # per image view: prior mean (N, D) and log-variance () from the factor-analysis layer
        self.priors: dict[str, tuple[Tensor, Tensor]] = {}
        self.kl_ramp = 1.0  # share of beta in use, set by `fit_rounds` from the schedule
        # each row's prior is fitted to its code, so a small KL does not mean an empty code
        self.kl_to_nats = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- the VAEs' loss -----------------------------------------------------------------------

    def prior(self, view: str, index: Tensor) -> tuple[Tensor, Tensor]:
        """Prior mean (B, D) and log-variance (scalar) of view `view`'s code for rows `index`."""
        if view not in self.priors:  # no factor-analysis layer yet: N(0, I)
            zero = torch.zeros((), device=self.device)
            return zero, zero
        mean, logvar = self.priors[view]
        return mean[index.to(mean.device)].to(self.device), logvar.to(self.device)

    def loss(self, batch: tuple[Tensor, dict[str, Tensor]]) -> dict[str, Tensor]:
        """Batch means of the terms; batch = (rows (B,), {image view: x (B, C, H, W)}).

        Returns reconstruction (-log p(x | h), one h per example) and kl (to each row's prior),
        both summed over the image views, their per-view values when there are several, and
        total = reconstruction + kl_ramp * beta * kl.
        """
        index, images = batch
        missing = set(self.vaes) - set(images)
        if missing:
            raise ValueError(f"the batch lacks image views {sorted(missing)}")
        terms: dict[str, Tensor] = {}
        for name, vae in self.vaes.items():
            x = images[name]
            vae.check_input(x)
            mean, logvar = vae.encode(x)
            h = reparameterize(mean, logvar)
            terms[f"reconstruction_{name}"] = -vae.log_likelihood(x, h).mean()
            terms[f"kl_{name}"] = kl_normal(mean, logvar, *self.prior(name, index)).mean()
        reconstruction = sum(terms[f"reconstruction_{name}"] for name in self.vaes)
        kl = sum(terms[f"kl_{name}"] for name in self.vaes)
        total = reconstruction + self.kl_ramp * self.config.beta * kl
        if len(self.vaes) == 1:
            terms = {}
        return {"total": total, "reconstruction": reconstruction, "kl": kl, **terms}

    # -- the factor-analysis layer ------------------------------------------------------------

    @torch.no_grad()
    def encode(self, view: str, images: Tensor, batch_size: int = 500) -> fa.Latent:
        """The encoder's moments as a latent view: images (N, C, H, W), float in [0, 1] or
        uint8 -> Latent(mean, var), each (N, D). Raises `NonFiniteLossError` on NaN or inf."""
        vae = self._vae(view)
        was_training = vae.training
        vae.eval()
        moments = []
        for i in range(0, len(images), batch_size):
            x = as_float_images(images[i : i + batch_size].to(self.device))
            vae.check_input(x)
            moments.append(vae.encode(x))
        vae.train(was_training)
        mean = torch.cat([m for m, _ in moments])
        var = torch.cat([logvar for _, logvar in moments]).exp()
        if not (torch.isfinite(mean).all() and torch.isfinite(var).all()):
            raise NonFiniteLossError(
                f"the encoder of view {view!r} gives non-finite means or variances; lower the "
                "learning rate, set TrainConfig(grad_clip=...), or check the images for NaN"
            )
        return fa.Latent(mean, var)

    def start_fa(self, data: FAVAEData) -> None:
        """Build the factor-analysis layer from the encoders' moments on `data` and its side
        views (`new_layer`); training goes on from it."""
        if self.config.prior_from == "side" and not data.side_views:
            raise ValueError(
                "prior_from='side' infers the prior from the side views, and the data has none; "
                "add label views (FAVAEData(side_views=...)) or use prior_from='all'"
            )
        self.fa = self.new_layer(data)

    def new_layer(self, data: FAVAEData) -> fa.SSHIBA:
        """A factor-analysis layer over the encoders' moments on `data` and its side views,
        with `FAVAEConfig.factors` factors, on the VAEs' device, in float64 on every device: a
        side view that the factors reproduce almost exactly (one-hot codes as `fa.Real`) drives
        its noise precision to about 1e12, where float32 precision matrices stop being positive
        definite. Not yet fitted; the model's own layer is untouched."""
        self._check_views(data)
        latents = {name: self.encode(name, data.images[name]) for name in self.vaes}
        config = fa.FAConfig(
            rotate=self.config.fa_rotate,
            seed=self.config.seed,
            device=self.device,
            dtype=torch.float64,
        )
        return fa.SSHIBA({**latents, **data.side_views}, k=self.config.factors, config=config)

    def reading_layer(self, data: FAVAEData, sweeps: int = 100) -> fa.SSHIBA:
        """A layer fitted afresh (`sweeps` from its PCA start) on the trained encoders' codes of
        `data` and its side views, e.g. labels as categorical views, to read those labels from
        codes with `SSHIBA.predict`; the model's own layer is untouched."""
        return self.new_layer(data).fit(n_iter=sweeps)

    def refresh_latent_views(self, data: FAVAEData) -> None:
        """Replace every latent view's data by the current encoders' moments on `data`."""
        layer = self._layer()
        for name in self.vaes:
            layer.replace_view(name, self.encode(name, data.images[name]))

    def fa_sweeps(self, n: int) -> None:
        """Up to n sweeps of the factor-analysis layer with the VAEs fixed, then the VAEs'
        priors from its new moments. Raises `NonFiniteLossError` if the layer's bound is not
        finite, before any prior is touched."""
        layer = self._layer().fit(n_iter=n)
        if not math.isfinite(layer.history[-1]):
            raise NonFiniteLossError(
                f"the factor-analysis bound is {layer.history[-1]} after {n} sweeps (bounds "
                f"before: {layer.history[-4:-1]}); check the encoders' moments and the side "
                "views for NaN or inf, or lower the VAEs' learning rate"
            )
        self.refresh_prior()

    def refresh_prior(self) -> None:
        """Every VAE's prior from the layer: mean <Z><W_m>^T + <b_m>, variance 1 / <tau_m>,
        with <Z> of the training rows (prior_from 'all') or re-inferred from their side views
        alone ('side'). Raises `NonFiniteLossError` on a non-finite prior, so no VAE trains
        against NaN."""
        layer = self._layer()
        z = None  # prior_from 'all': <Z> of q(Z), from every view
        if self.config.prior_from == "side":  # once for all image views: the loop is costly
            z = layer.z_from([name for name in layer.views if name not in self.vaes])
        for name in self.vaes:
            mean, tau = layer.prior_moments(name, z)
            logvar = -torch.log(tau)
            if not (torch.isfinite(mean).all() and torch.isfinite(logvar).all()):
                raise NonFiniteLossError(
                    f"the factor-analysis prior of view {name!r} is not finite (<tau> = "
                    f"{tau.tolist()}); check the encoders' moments and the side views for NaN "
                    "or inf, or lower the VAEs' learning rate"
                )
            self.priors[name] = (
                mean.to(self.device, torch.float32),
                logvar.to(self.device, torch.float32),
            )

    def update_round(self, data: FAVAEData, round_: int, schedule: FAVAESchedule) -> dict:
        """One round of `fit_rounds`: the layer started (round 0) or its latent views refreshed
        from the encoders, regrown if the schedule says so, then its sweeps and the VAEs' new
        priors. Returns the round's seconds of encoding and of sweeps, the bound and K."""
        self._check_views(data)
        start = time.perf_counter()
        if self.fa is None:
            self.start_fa(data)
        else:
            self.refresh_latent_views(data)
        encoded = time.perf_counter()
        if schedule.regrow and 0 < round_ < schedule.rounds:
            self.fa.grow(self.config.factors)
        self.fa_sweeps(schedule.first_sweeps if round_ == 0 else schedule.sweeps)
        if self.fa.k <= COLLAPSED_FACTORS:
            warnings.warn(
                f"the factor-analysis layer keeps {self.fa.k} factor(s) after round {round_}: "
                "ARD pruned the rest, and a pruned factor never returns, so the prior conditions "
                "little. Use FAVAESchedule(regrow=True) or more warmup_epochs (the encoders must "
                "carry what the labels describe before the first round)",
                FactorCollapseWarning,
                stacklevel=2,
            )
        return {
            "encode_seconds": encoded - start,
            "fa_seconds": time.perf_counter() - encoded,
            "fa_bound": self.fa.history[-1],
            "factors": self.fa.k,
        }

    # -- prediction across views --------------------------------------------------------------

    def shared_factors(self, views: list[str] | tuple[str, ...], threshold: float = 0.05) -> Tensor:
        """(K,) bool: the factors whose activity (`SSHIBA.activity`) is above `threshold` in
        every one of `views`."""
        return self._activity(views).gt(threshold).all(0)

    def private_factors(self, view: str, threshold: float = 0.05) -> Tensor:
        """(K,) bool: the factors active in `view` and in no other view of the layer."""
        others = [name for name in self._layer().views if name != view]
        active = self.shared_factors([view], threshold)
        if not others:
            return active
        return active & ~self._activity(others).gt(threshold).any(0)

    @torch.no_grad()
    def prior_from(self, inputs: dict[str, Tensor | fa.View], view: str) -> tuple[Tensor, Tensor]:
        """The prior of image view `view`'s code for new rows observed in the other views
        `inputs` (as in `predict`): mean (B, D) = the layer's prediction of the latent view,
        log-variance () = -log <tau>. Held-out KL terms use it."""
        self._vae(view)
        if view in inputs:
            raise ValueError(f"view {view!r} is both input and output; leave it out of inputs")
        layer = self._layer()
        mean = layer.predict(self._as_views(inputs), view).to(self.device, torch.float32)
        logvar = -torch.log(layer.prior_moments(view)[1]).to(self.device, torch.float32)
        return mean, logvar

    @torch.no_grad()
    def predict(
        self,
        inputs: dict[str, Tensor | fa.View],
        output: str,
        factors: Tensor | None = None,
        offset_scale: float = 1.0,
    ) -> Tensor:
        """Posterior predictive of view `output` for new rows observed in `inputs`.

        inputs: image views as images (B, C, H, W), encoded to their latent views; other views
            as `SSHIBA.predict` takes them, e.g. labels (B,) for a Categorical view.
        output: an image view gives the decoded mean images (B, C, H, W) in [0, 1] (an image
            from labels, or from another image view: translation); a label view gives
            probabilities, (B, C) for Categorical, (B, L) for Binary/Multilabel.
        factors: (K,) bool, the factors to use (e.g. `shared_factors`); None: all.
        offset_scale: an image view's code is decoded at b + offset_scale (E[code] - b), b the
            view's bias (its mean code): 1 decodes the posterior mean; above 1 undoes the
            posterior mean's shrinkage toward b when few views are observed (chapter 8).
        """
        layer = self._layer()
        prediction = layer.predict(self._as_views(inputs), output, factors=factors)
        if output not in self.vaes:
            if offset_scale != 1.0:
                raise ValueError(f"offset_scale rescales codes; {output!r} is not an image view")
            return prediction.to(self.device, torch.float32)
        bias = layer.q[output].b_mean
        code = bias + offset_scale * (prediction - bias)
        return self.vaes[output].decode(code.to(self.device, torch.float32))

    @torch.no_grad()
    def offset_scale(self, inputs: dict[str, Tensor | fa.View], images: Tensor, view: str) -> float:
        """The least-squares s in c - b ~ s (E[code | inputs] - b) over rows whose images of
        image view `view` are known: c their encoder means, b the view's bias. With few observed
        views the posterior mean of Z, and so of the code, is pulled toward the prior, so s is
        about 1 / (the share of the way to c the prediction moves); ``predict(...,
        offset_scale=s)`` undoes that. inputs: as `predict` takes them, N rows; images: (N, C,
        H, W). Returns 1.0 when the inputs leave the code at b (nothing to rescale)."""
        codes = self.encode(view, images).data.double().cpu()
        predicted = self._layer().predict(self._as_views(inputs), view).double().cpu()
        bias = self._layer().q[view].b_mean.double().cpu()
        offset = predicted - bias
        if offset.pow(2).sum() <= 1e-12 * (codes - bias).pow(2).sum():
            return 1.0
        return ((codes - bias) * offset).sum().item() / offset.pow(2).sum().item()

    @torch.no_grad()
    def combine(
        self, parts: list[tuple[dict[str, Tensor | fa.View], Tensor]], output: str
    ) -> Tensor:
        """Image view `output` decoded from factors read off different rows.

        parts: (inputs, factors) pairs: E[Z | inputs] (inputs as in `predict`, the same B rows in
            every part) is kept on `factors`, (K,) bool, disjoint between parts; factors of no
            part sit at their prior mean 0. E.g. [({"left": x}, shared), ({"right": y},
            private_right)] draws the character of x at the pose of y.
        Returns (B, C, H, W) in [0, 1]; one part with every factor is `predict(inputs, output)`.
        """
        self._vae(output)
        layer = self._layer()
        masks = [torch.as_tensor(factors, device=layer.device) for _, factors in parts]
        if any(m.dtype != torch.bool or m.shape != (layer.k,) for m in masks):
            raise ValueError(f"each part's factors must be a (K,) = ({layer.k},) bool mask")
        if (torch.stack(masks).sum(0) > 1).any():
            raise ValueError("the parts' factors overlap: give every factor to one part at most")
        z = sum(
            layer.posterior_z(self._as_views(inputs)).mean * mask.to(layer.dtype)
            for (inputs, _), mask in zip(parts, masks, strict=True)
        )
        mean = layer.q[output].mean_of(z).to(self.device, torch.float32)
        return self.vaes[output].decode(mean)

    # -- checkpoints: the layer travels with the weights ----------------------------------------

    def get_extra_state(self) -> dict:
        return {"fa": self.fa}

    def set_extra_state(self, state: dict) -> None:
        self.fa = state["fa"]
        if self.fa is not None:  # torch.load's map_location moved its tensors
            self.fa.device = self.fa.q_z.mean.device
            self.refresh_prior()

    # -- helpers ------------------------------------------------------------------------------

    def _vae(self, view: str) -> VAE:
        if view not in self.vaes:
            raise ValueError(
                f"{view!r} is not an image view; the image views are {list(self.vaes)}"
            )
        return self.vaes[view]

    def _as_views(self, inputs: dict[str, Tensor | fa.View]) -> dict[str, Tensor | fa.View]:
        """Images of image views encoded to latent views; everything else as it is."""
        return {
            name: self.encode(name, x) if name in self.vaes and isinstance(x, Tensor) else x
            for name, x in inputs.items()
        }

    def _layer(self) -> fa.SSHIBA:
        if self.fa is None:
            raise RuntimeError(
                "the factor-analysis layer does not exist yet; train it with "
                "vaebook.train.fit_rounds(...) or call start_fa(data)"
            )
        return self.fa

    def _activity(self, views: list[str] | tuple[str, ...]) -> Tensor:
        layer = self._layer()
        names = list(layer.views)
        unknown = [v for v in views if v not in names]
        if unknown:
            raise ValueError(f"unknown views {unknown}; the layer has {names}")
        return layer.activity()[[names.index(v) for v in views]]

    def _check_views(self, data: FAVAEData) -> None:
        if set(data.images) != set(self.vaes):
            raise ValueError(
                f"the data's image views {sorted(data.images)} differ from the model's "
                f"{sorted(self.vaes)}; set FAVAEConfig(image_views=...) to match"
            )
