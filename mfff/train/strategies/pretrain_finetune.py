"""Pre-train, then fine-tune, in one job, with the pre-training cached."""

from __future__ import annotations

from dataclasses import replace

from mfff.errors import Interrupted
from mfff.train.builders import pretrain_record
from mfff.train.checks import check_train_config
from mfff.train.pretrain_cache import PretrainCache, cache_key
from mfff.train.resume import AUTO
from mfff.train.stage import run_stage, stage_config
from mfff.train.strategies.base import Strategy, outcome, require_sources
from mfff.train.strategies.finetune import Finetune
from mfff.train.strategies.joint import Pretrain


class PretrainFinetune(Strategy):
    """Pre-train, then fine-tune, in one job. The pre-training is cached under a key of all it depends on, so a
    sweep over fine-tuning sizes or modes pre-trains once.

    Args:
        pretrain: the `Pretrain` strategy of the first stage (conf/strategy/pretrain.yaml, composed in).
        finetune: the `Finetune` strategy of the second (conf/strategy/finetune.yaml; its `from` is the
            pre-training's checkpoint).
        cache_dir: where pre-trained checkpoints are kept (shared by the jobs of a sweep).
    """

    name = "pretrain_finetune"

    def __init__(self, pretrain: Pretrain, finetune: Finetune, cache_dir: str, name: str | None = None):
        self.pretrainer, self.finetuner = pretrain, finetune
        super().__init__(sorted({*pretrain.fidelities, finetune.fidelity}), name)
        self.cache = PretrainCache(cache_dir)

    def describe(self) -> dict:
        finetune = {k: v for k, v in self.finetuner.describe().items() if k != "from"}
        return {**super().describe(), "pretrain": self.pretrainer.describe(), "finetune": finetune}

    def run(self, cfg, output_dir, resume=None):
        require_sources(cfg, self.pretrainer.fidelities, "strategy.pretrain.fidelities")
        require_sources(cfg, [self.finetuner.fidelity], "strategy.finetune.fidelity")
        # the fine-tune's own settings are checked now, not after the pre-training has run
        check_train_config(stage_config(cfg, output_dir, self.finetuner.deltas))
        stage = self.pretrainer.stage()
        key, settings = cache_key(cfg, stage)
        # resume=auto also continues a pre-training that was stopped (its checkpoints are in the cache's partial
        # entry); an explicit checkpoint is the fine-tune's
        pretrain_resume = AUTO if str(resume) == AUTO else None
        try:
            entry, status = self.cache.get_or_build(
                key,
                settings,
                lambda directory: run_stage(cfg, stage, directory, pretrain_resume),
                keep_partial=pretrain_resume is not None,
            )
        except Interrupted as err:
            err.by_path = False
            raise
        checkpoint = PretrainCache.checkpoint(entry)
        pretrain = replace(pretrain_record(checkpoint), key=key, cache=status)
        return outcome(run_stage(cfg, self.finetuner.stage(checkpoint), output_dir, resume), pretrain)
