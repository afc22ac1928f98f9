"""Seconds per FA-VAE round on the Sprites conditioning experiment (CPU), and the share spent in
the factor-analysis layer against the VAEs.

Rows: the training images of C random characters (3 actions x 3 directions x 4 frames each), one
convolutional image VAE (64x64x3, D = 32 as the committed conditioning run, or --latent-dim), the
four attributes and the three pose factors, K = 40, the experiment's schedule (5 sweeps and 1 VAE
epoch per round) with regrowth, as in the committed runs (each round starts its sweeps at K = 40
again). Three variants: categorical label views with the prior from every view (the paper's);
categorical views with the prior from the side views alone (which re-infers Z from the labels
every round through the probit loop); one-hot real label views with the side prior (the committed
conditioning run, where that inference is one Gaussian conditioning). A round is `fa` (the
sweeps, the priors refreshed) + `encode` (the latent views refreshed from the encoders) + `vae`
(one epoch); the first round, which runs 50 sweeps from the PCA start, is shown apart. The
factor-analysis layer must stay under 20% of a round.

    python benchmarks/favae_speed.py [--characters 25 50] [--rounds 3] [--threads 1]
        [--latent-dim 32]
"""

import argparse
import itertools
import os

import torch

from vaebook.experiments.favae import (
    FAVAEExperiment,
    condition_data,
    round_seconds,
    sprites_split,
)
from vaebook.models import FAVAE
from vaebook.train import fit_rounds

VARIANTS = (("categorical", "all"), ("categorical", "side"), ("real", "side"))  # labels, prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--characters", type=int, nargs="+", default=[25, 50])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the first")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--latent-dim", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"median of {args.rounds} rounds after the first; seconds\n")
    header = (
        f"{'labels':>11} | {'prior':>5} | {'rows':>6} | {'round':>7} | {'vae epoch':>9} | "
        f"{'encode':>7} | {'fa':>6} | {'fa share':>8} | {'first-round fa':>14} | {'K':>3}"
    )
    print(header)
    print("-" * len(header))
    for (label_views, prior_from), characters in itertools.product(VARIANTS, args.characters):
        config = FAVAEExperiment(
            train_characters=characters,
            latent_dim=args.latent_dim,
            label_views=label_views,
            rounds=args.rounds + 1,
            warmup_epochs=1,
            regrow=True,  # as the committed runs: every round sweeps K = 40 factors again
            prior_from=prior_from,
            device="cpu",
            progress=False,
        )
        train = sprites_split(characters, 1, config.frames).train
        torch.manual_seed(0)
        model = FAVAE(config.model_config(("image",)))
        history = fit_rounds(
            model, condition_data(config, train), config.schedule(), config.train_config(0, 0)
        )
        seconds = round_seconds(history, config.schedule())
        print(
            f"{label_views:>11} | {prior_from:>5} | {len(train):>6} | {seconds['round']:>7.2f} | "
            f"{seconds['vae']:>9.2f} | {seconds['encode']:>7.2f} | {seconds['fa']:>6.3f} | "
            f"{100 * seconds['fa_share']:>7.1f}% | {history['fa_seconds'][0]:>14.2f} | "
            f"{model.fa.k:>3}"
        )


if __name__ == "__main__":
    main()
