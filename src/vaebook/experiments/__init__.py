"""One small module per paper experiment: a config dataclass plus run(config) -> results dict.

The CLI (``python -m vaebook reproduce NAME``), the tests (with a quick config) and the
chapters all call the same ``run``. EXPERIMENTS maps a CLI name to (module, fixed settings).
"""

from vaebook.experiments import cyclevae, favae, infocatvae, vae

EXPERIMENTS = {
    "vae": (vae, {}),
    "infocatvae": (infocatvae, {"model": "infocatvae"}),
    "catvae": (infocatvae, {"model": "catvae"}),
    "gumbel": (infocatvae, {"model": "gumbel"}),
    "cyclevae": (cyclevae, {"model": "cyclevae"}),
    "mathieu": (cyclevae, {"model": "mathieu"}),
    "szabo": (cyclevae, {"model": "szabo"}),
    "cyclevae-authors": (cyclevae, {"model": "authors"}),
    "favae-condition": (favae, {"experiment": "condition"}),
    "favae-private-shared": (favae, {"experiment": "private-shared"}),
    "favae-domain": (favae, {"experiment": "domain"}),
    "favae-transfer": (favae, {"experiment": "transfer"}),
}

__all__ = ["EXPERIMENTS"]
