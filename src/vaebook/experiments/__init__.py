"""One small module per paper experiment: a config dataclass plus run(config) -> results dict.

The CLI (``python -m vaebook reproduce NAME``), the tests (with a quick config) and the
chapters all call the same ``run``.
"""

from vaebook.experiments import vae

EXPERIMENTS = {"vae": vae}

__all__ = ["EXPERIMENTS"]
