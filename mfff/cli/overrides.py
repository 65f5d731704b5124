"""Command-line overrides of the config's open nodes: deltas whose keys the user chooses.

Hydra refuses `strategy.pretrain.trainer.max_epochs=50` because `strategy.pretrain.trainer` is an empty dict in the
yaml, and asks for `+`. These nodes exist to take keys of the user's choosing, so an override below one of them is
passed to Hydra as `++key=value` (add or override) and works as written, in single runs and sweeps alike.
"""

from __future__ import annotations

# dotted nodes; `*` is one key of any name (a stage of a composite strategy: strategy.pretrain, strategy.finetune)
OPEN_NODES = (
    "strategy.trainer",
    "strategy.optimizer",
    "strategy.scheduler",
    "strategy.*.trainer",
    "strategy.*.optimizer",
    "strategy.*.scheduler",
    "loss.per_fidelity",
)


def _under_open_node(key: str) -> bool:
    parts = key.split(".")
    for node in OPEN_NODES:
        pattern = node.split(".")
        if len(parts) > len(pattern) and all(p in ("*", k) for p, k in zip(pattern, parts)):
            return True
        if parts == pattern:  # the whole delta at once: loss.per_fidelity={dft:{energy_weight:5}}
            return True
    return False


def open_overrides(overrides: list[str]) -> list[str]:
    """`key=value` below an open node becomes `++key=value`; every other argument is left as it is (flags, group
    choices, `+`/`~` overrides and keys the config has)."""
    out = []
    for override in overrides:
        key, equals, _ = override.partition("=")
        plain = equals and not override.startswith(("-", "+", "~")) and "/" not in key and "@" not in key
        out.append(f"++{override}" if plain and _under_open_node(key) else override)
    return out
