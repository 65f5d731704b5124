"""The one declaration of what makes two runs the same: every config key and every `Stage` field has a role.

From it derive the pre-training cache key (`mfff.runs.pretrain_cache`), the resume check and the hyper-parameters a
checkpoint stores (`stage_settings`), and a sweep's `config_hash` (`config_hash`). A key that no rule classifies is
refused, so a new setting cannot be silently left out of the cache key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import field, fields
from enum import Enum
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mfff.errors import UserError

SETTINGS_SCHEMA = 2  # of the `settings` a checkpoint stores; 1 was {data, trainer} of mfff before this module


class Role(str, Enum):
    """What a setting changes."""

    WEIGHTS = "weights"  # the trained weights: in the cache key; a resume refuses a change; in the config hash
    LENGTH = "length"  # the run's length: as WEIGHTS, but a resume may change it (the schedule is stretched)
    METRICS = "metrics"  # only what is evaluated and reported (test sets): in the config hash only
    STAGE = "stage"  # acts through the stage's objects (`Stage` fields below): in the config hash
    INERT = "inert"  # how a run is shown, placed, scheduled or continued: nowhere


WEIGHTS, LENGTH, METRICS, STAGE, INERT = Role.WEIGHTS, Role.LENGTH, Role.METRICS, Role.STAGE, Role.INERT

# Config keys (dotted; `*` is one key of any name; a rule covers the key's whole subtree). The most specific rule
# wins: more parts first, then literal parts before `*`. README "What makes two runs the same" lists these.
CONFIG_ROLES: dict[str, Role] = {
    "seed": WEIGHTS,
    "cutoff": WEIGHTS,
    "monitor": WEIGHTS,  # which epoch is best, early stopping and plateau schedules follow it
    "model": WEIGHTS,
    "loss": WEIGHTS,
    "optimizer": WEIGHTS,
    "scheduler": WEIGHTS,
    "fidelities": STAGE,
    "strategy": STAGE,
    "strategy.cache_dir": INERT,  # where the pre-training cache lies (paths.cache_dir): its key is the content
    "strategy.*.key": INERT,  # the config path a stage's options sit at, for messages
    "data._target_": WEIGHTS,
    "data.fidelity": STAGE,
    "data.batch_size": WEIGHTS,
    "data.cutoff": WEIGHTS,
    "data.dtype": WEIGHTS,
    "data.seed": WEIGHTS,
    "data.budget": WEIGHTS,
    "data.sources.*": WEIGHTS,  # counted for the sources a stage uses (its heads, Δ bases, molecule exclusions)
    "data.sources.*.n_test": METRICS,
    "data.sources.*.test": METRICS,
    "data.eval_batch_size": METRICS,
    "data.neighbours": INERT,  # every backend gives the same edges (tests/data/test_neighbours.py)
    "data.num_workers": INERT,
    "callbacks.*": WEIGHTS,  # EMA, early stopping and any callback a user adds
    "callbacks.model_checkpoint": INERT,
    "callbacks.model_checkpoint.monitor": WEIGHTS,  # decides which epoch is "best"
    "callbacks.model_checkpoint.mode": WEIGHTS,
    "callbacks.last_checkpoint": INERT,
    "callbacks.lr_monitor": INERT,
    "callbacks.save_on_signal": INERT,
    "logger": INERT,
    "paths": INERT,
    "cluster": INERT,
    "threads": INERT,  # the same numbers with any thread count (checked: benchmarks/threads)
    "resume": INERT,
    "experiment_name": INERT,
    # Lightning's Trainer arguments
    "trainer._target_": WEIGHTS,
    "trainer.max_epochs": LENGTH,
    "trainer.max_steps": LENGTH,
    "trainer.max_time": LENGTH,
    "trainer.fast_dev_run": LENGTH,
    "trainer.min_epochs": WEIGHTS,
    "trainer.min_steps": WEIGHTS,
    "trainer.accelerator": WEIGHTS,
    "trainer.strategy": WEIGHTS,
    "trainer.devices": WEIGHTS,  # the world size splits the batches
    "trainer.num_nodes": WEIGHTS,
    "trainer.precision": WEIGHTS,
    "trainer.accumulate_grad_batches": WEIGHTS,
    "trainer.gradient_clip_val": WEIGHTS,
    "trainer.gradient_clip_algorithm": WEIGHTS,
    "trainer.deterministic": WEIGHTS,
    "trainer.benchmark": WEIGHTS,
    "trainer.inference_mode": WEIGHTS,
    "trainer.check_val_every_n_epoch": WEIGHTS,
    "trainer.val_check_interval": WEIGHTS,
    "trainer.limit_train_batches": WEIGHTS,
    "trainer.limit_val_batches": WEIGHTS,
    "trainer.overfit_batches": WEIGHTS,
    "trainer.use_distributed_sampler": WEIGHTS,
    "trainer.sync_batchnorm": WEIGHTS,
    "trainer.reload_dataloaders_every_n_epochs": WEIGHTS,
    "trainer.enable_checkpointing": WEIGHTS,
    "trainer.plugins": WEIGHTS,
    "trainer.limit_test_batches": METRICS,
    "trainer.default_root_dir": INERT,
    "trainer.enable_progress_bar": INERT,
    "trainer.enable_model_summary": INERT,
    "trainer.log_every_n_steps": INERT,
    "trainer.num_sanity_val_steps": INERT,
    "trainer.profiler": INERT,
    "trainer.detect_anomaly": INERT,
    "trainer.barebones": INERT,
    "trainer.limit_predict_batches": INERT,
}


class UnclassifiedSetting(UserError):
    """A config key or `Stage` field that no rule of the declaration covers."""


def setting(role: Role, plain=None, **kwargs):
    """A dataclass field with its role; `plain` turns its value into JSON-able data for the settings."""
    return field(metadata={"role": role, "plain": plain}, **kwargs)


def field_settings(obj) -> dict[str, Any]:
    """The WEIGHTS fields of a dataclass declared with `setting`, as plain data; a field without a role is refused."""
    out = {}
    for item in fields(obj):
        role = item.metadata.get("role")
        if role is None:
            raise UnclassifiedSetting(
                f"{type(obj).__name__}.{item.name} has no role; declare it with mfff.train.settings.setting(Role...) "
                "so the cache key, the resume check and the checkpoint know whether it changes the weights"
            )
        if role in (Role.WEIGHTS, Role.LENGTH):
            value = getattr(obj, item.name)
            out[item.name] = item.metadata["plain"](value) if item.metadata["plain"] else value
    return out


def _rules() -> list[tuple[list[str], Role]]:
    rules = [(pattern.split("."), role) for pattern, role in CONFIG_ROLES.items()]
    return sorted(rules, key=lambda rule: (-len(rule[0]), rule[0].count("*")))


def role_of(key: str, rules=None) -> Role | None:
    """The role of a dotted config key (a leaf), or None when no rule covers it."""
    parts = key.split(".")
    for pattern, role in rules or _rules():
        if len(pattern) <= len(parts) and all(p in ("*", k) for p, k in zip(pattern, parts)):
            return role
    return None


def _leaves(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _leaves(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def classify(cfg: DictConfig) -> dict[Role, dict[str, Any]]:
    """Every leaf of the resolved config under its role; keys no rule covers are refused, all named at once."""
    leaves: dict[str, Any] = {}
    _leaves("", OmegaConf.to_container(cfg, resolve=True), leaves)
    rules = _rules()
    classified: dict[Role, dict[str, Any]] = {role: {} for role in Role}
    unknown = []
    for key, value in sorted(leaves.items()):
        role = role_of(key, rules)
        if role is None:
            unknown.append(key)
        else:
            classified[role][key] = value
    if unknown:
        raise UnclassifiedSetting(
            f"config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} {'are' if len(unknown) > 1 else 'is'} "
            "not classified, so mfff cannot tell whether it changes the trained weights (the pre-training cache "
            "key, the resume check); remove it, or give it a role in CONFIG_ROLES (mfff/train/settings.py)"
        )
    return classified


def source_of(key: str) -> str | None:
    """The source a `data.sources.<name>...` key belongs to."""
    parts = key.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["data", "sources"] else None


def sources_used(cfg: DictConfig, names: list[str]) -> list[str]:
    """The sources whose settings shape training on `names`: those, and the ones whose molecules they exclude."""
    used, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in used or name not in cfg.data.sources:
            continue
        used.add(name)
        todo += [str(n) for n in cfg.data.sources[name].get("exclude_molecules_of") or []]
    return sorted(used)


def stage_settings(staged: DictConfig, stage) -> dict:
    """What determines a stage's trained weights: the WEIGHTS and LENGTH config keys of `staged` (the root config
    with the stage's deltas merged; of data.sources only the sources the stage uses) and the stage's fields. The
    checkpoint stores it, a resume compares it, and the pre-training cache key hashes it."""
    classified = classify(staged)
    used = set(sources_used(staged, stage.sources))

    def keep(key: str) -> bool:
        return source_of(key) is None or source_of(key) in used

    return {
        "schema": SETTINGS_SCHEMA,
        Role.WEIGHTS.value: {k: v for k, v in classified[Role.WEIGHTS].items() if keep(k)},
        Role.LENGTH.value: classified[Role.LENGTH],
        Role.STAGE.value: stage.settings(),
    }


def config_hash(cfg: DictConfig) -> str:
    """A hash of every setting that changes what a run computes or reports (all but INERT ones): a rerun sweep
    skips a finished job whose hash is the same (`mfff.runs.finished`)."""
    classified = classify(cfg)
    relevant = {role.value: values for role, values in classified.items() if role is not Role.INERT}
    return settings_hash(relevant)


def settings_hash(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


ROLE_EFFECTS = {  # role: (pre-training cache key, a resume, config_hash)
    Role.WEIGHTS: ("yes", "refuses a change", "yes"),
    Role.LENGTH: ("yes", "applies a change (schedule stretched)", "yes"),
    Role.METRICS: ("no", "applies a change", "yes"),
    Role.STAGE: ("through the stage's fields", "refuses a change to those", "yes"),
    Role.INERT: ("no", "applies a change", "no"),
}


def roles_table() -> str:
    """The Markdown table of CONFIG_ROLES in the README ("What makes two runs the same")."""
    lines = ["| role | pre-training cache key | a resume | `config_hash` | config keys |", "|---|---|---|---|---|"]
    for role, (key, resume, hashed) in ROLE_EFFECTS.items():
        groups: dict[str, list[str]] = {}
        for pattern, of in CONFIG_ROLES.items():
            if of is role:
                head, _, rest = pattern.partition(".")
                groups.setdefault(head, []).append(rest)
        keys = "; ".join(
            f"`{head}`" if rests == [""] else f"`{head}.`{{{', '.join(r or '(all)' for r in rests)}}}"
            for head, rests in groups.items()
        )
        lines.append(f"| `{role.value}` | {key} | {resume} | {hashed} | {keys} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(roles_table())
