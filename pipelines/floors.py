"""The environment's quality floors: a run may raise `AucThreshold` or tighten `ChampionTolerance`,
never weaken them below environments/<env>.yaml (training.auc_threshold, training.champion_tolerance).

Refused here, before anything is written, for runs started through the toolkit; the train pipelines
also carry the floors as literals (pipelines/definitions.py), so a run started any other way cannot
weaken them either.
"""

from __future__ import annotations

from mlops_core.config import Environment
from mlops_core.errors import ConfigError


def check_quality_floors(env: Environment, params: dict) -> None:
    """ConfigError (exit 2) naming the parameter, its value and the environment's floor."""
    t = env.training
    floors = {
        "AucThreshold": (t.auc_threshold, lambda v: v < t.auc_threshold, "below"),
        "ChampionTolerance": (t.champion_tolerance, lambda v: v > t.champion_tolerance, "above"),
    }
    for name, (floor, weaker, side) in floors.items():
        if name not in params:
            continue
        try:
            value = float(params[name])
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={params[name]} is not a number", field="--param") from None
        if weaker(value):
            field = "auc_threshold" if name == "AucThreshold" else "champion_tolerance"
            raise ConfigError(
                f"{name}={params[name]} is {side} the environment's training.{field} ({floor}): "
                "a run may raise the quality bar, not lower it",
                field="--param",
            )
