"""``python -m vaebook reproduce EXPERIMENT [--dataset D] [--epochs N] [--device D] [--seed S]``:
train with the book's settings and write results/<experiment>.json and checkpoints/."""

from __future__ import annotations

import argparse
import dataclasses
import json

from vaebook.experiments import EXPERIMENTS


def _experiment_config(module):
    (config_class,) = [
        v
        for v in vars(module).values()
        if dataclasses.is_dataclass(v) and v.__module__ == module.__name__
    ]
    return config_class


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaebook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    reproduce = commands.add_parser("reproduce", help="run one experiment of the book")
    reproduce.add_argument("experiment", choices=sorted(EXPERIMENTS))
    reproduce.add_argument("--dataset", help="e.g. mnist, fashion-mnist")
    reproduce.add_argument("--epochs", type=int)
    reproduce.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    reproduce.add_argument("--seed", type=int)
    reproduce.add_argument("--iwae-k", type=int, dest="iwae_k")
    reproduce.add_argument("--train-size", type=int, dest="train_size")
    reproduce.add_argument("--test-size", type=int, dest="test_size")
    reproduce.add_argument("--results-dir", dest="results_dir")
    reproduce.add_argument("--checkpoint-dir", dest="checkpoint_dir")
    reproduce.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue a killed run from its last checkpoint",
    )
    reproduce.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    args = parser.parse_args(argv)

    module = EXPERIMENTS[args.experiment]
    config_class = _experiment_config(module)
    fields = {f.name for f in dataclasses.fields(config_class)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    unknown = (
        {k for k, v in vars(args).items() if v is not None} - fields - {"command", "experiment"}
    )
    if unknown:
        parser.error(f"experiment {args.experiment!r} takes no option {sorted(unknown)}")
    results = module.run(config_class(**given))
    print(json.dumps(results["metrics"], indent=2))
    return 0
