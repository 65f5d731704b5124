"""Run a strategy's plan: a cached pre-training if it has one, then its final stage."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from omegaconf import DictConfig

from mfff.records import PretrainRef
from mfff.runs.fit import StageResult, run_stage
from mfff.runs.pretrain_cache import PretrainCache, cache_key
from mfff.runs.resume import AUTO
from mfff.train.builders import pretrain_record
from mfff.train.strategies.base import Plan


@dataclass
class Outcome:
    """A strategy's result: the final stage, plus what the pre-training was (if there was one)."""

    result: StageResult
    pretrain: PretrainRef | None = None
    n_train: dict = field(default_factory=dict)  # every label used, over all stages
    label_cost: dict = field(default_factory=dict)


def outcome(result: StageResult, pretrain: PretrainRef | None = None) -> Outcome:
    n_train = {f: s.n_train for f, s in result.stats.items()}
    cost = {f: s.label_cost for f, s in result.stats.items()}
    if pretrain:  # the pre-training labels are part of what this model cost
        n_train = {**pretrain.n_train, **n_train}
        cost = {**pretrain.label_cost_cpu_s, **cost}
    return Outcome(result, pretrain, n_train, cost)


def execute(cfg: DictConfig, plan: Plan, output_dir: Path, resume: str | None = None) -> Outcome:
    """Run `plan` into `output_dir`; `resume` continues the final stage (resume=auto also a stopped pre-training,
    whose checkpoints are in the cache's partial entry)."""
    if plan.pretrain is None:
        stage, pretrain = plan.final, pretrain_record(plan.source) if plan.source else None
    else:
        key, settings = cache_key(cfg, plan.pretrain)
        pretrain_resume = AUTO if str(resume) == AUTO else None
        entry, status = PretrainCache(plan.cache_dir).get_or_build(
            key,
            settings,
            lambda directory: run_stage(cfg, plan.pretrain, directory, pretrain_resume, last=False),
            keep_partial=pretrain_resume is not None,
        )
        checkpoint = PretrainCache.checkpoint(entry)
        stage, pretrain = plan.final(checkpoint), replace(pretrain_record(checkpoint), key=key, cache=status)
    return outcome(run_stage(cfg, stage, output_dir, resume), pretrain)
