"""``python -m vaebook reproduce EXPERIMENT [--dataset D] [--epochs N] [--device D] [--seed S]
[--dims N] [--publish] [--set FIELD=VALUE ...]``: train with the book's settings and write
<name>.json and <name>.pt into the run folder runs/<name>/ (with --publish: into the book's
results/ and checkpoints/). ``--set`` changes any field of the experiment's config dataclass."""

from __future__ import annotations

import argparse
import json
import types
import typing

from vaebook.experiments import EXPERIMENTS, Experiment
from vaebook.experiments.common import FLAGS, check_publish


def _parse(kind, text: str):
    """Convert a command-line string to a config field's type (int, float, bool, str,
    tuple[int, ...], or X | None)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if text.lower() == "none":
            return None
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
    if typing.get_origin(kind) is tuple:
        (item, *_) = typing.get_args(kind)
        return tuple(item(v) for v in text.split(",") if v)
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    return kind(text)


def parse_command(argv: list[str] | None = None) -> tuple[Experiment, object]:
    """The experiment a command line names and the config it asks for (not yet run)."""
    parser = argparse.ArgumentParser(prog="python -m vaebook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    reproduce = commands.add_parser("reproduce", help="run one experiment of the book")
    reproduce.add_argument("experiment", choices=sorted(EXPERIMENTS))
    for name, options in FLAGS.items():
        options = dict(options)
        flag = options.pop("flag", "--" + name.replace("_", "-"))
        reproduce.add_argument(flag, dest=name, default=None, **options)
    reproduce.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="any config field"
    )
    args = parser.parse_args(argv)

    experiment = EXPERIMENTS[args.experiment]
    types_ = typing.get_type_hints(experiment.config)
    given = {k: v for k, v in vars(args).items() if k in types_ and v is not None}
    unknown = {k for k, v in vars(args).items() if v is not None} - set(types_)
    unknown -= {"command", "experiment", "set"}
    for item in args.set:
        field, _, text = item.partition("=")
        if field not in types_ or not text:
            parser.error(f"--set {item!r}: use FIELD=VALUE with FIELD one of {sorted(types_)}")
        try:
            given[field] = _parse(types_[field], text)
        except ValueError as error:
            parser.error(f"--set {item!r}: {error}")
    if args.seed is not None and "seeds" in types_:  # multi-seed experiments: --seed picks one
        given.pop("seed", None)
        given["seeds"] = (args.seed,)
        unknown.discard("seed")
    if unknown:
        parser.error(f"experiment {args.experiment!r} takes no option {sorted(unknown)}")
    try:
        config = experiment.config(**{**given, **experiment.fixed})
        check_publish(config)
    except ValueError as error:  # a meaningless value, or a publish that would lose a run
        parser.error(str(error))
    return experiment, config


def main(argv: list[str] | None = None) -> int:
    experiment, config = parse_command(argv)
    results = experiment.run(config)
    print(json.dumps(results["metrics"], indent=2))
    print(f"wrote {config.results_path} and {config.checkpoint_folder}/")
    return 0
