"""Pre-train, then fine-tune, in one job, with the pre-training cached."""

from __future__ import annotations

from mfff.train.checks import check_train_config
from mfff.train.stage import stage_config
from mfff.train.strategies.base import Plan, Strategy, require_sources
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
        self.cache_dir = str(cache_dir)

    def describe(self) -> dict:
        finetune = {k: v for k, v in self.finetuner.describe().items() if k != "from"}
        return {**super().describe(), "pretrain": self.pretrainer.describe(), "finetune": finetune}

    def plan(self, cfg, output_dir):
        require_sources(cfg, self.pretrainer.fidelities, "strategy.pretrain.fidelities")
        require_sources(cfg, [self.finetuner.fidelity], "strategy.finetune.fidelity")
        # the fine-tune's own settings are checked now, not after the pre-training has run
        check_train_config(stage_config(cfg, output_dir, self.finetuner.deltas))
        return Plan(self.finetuner.stage, pretrain=self.pretrainer.stage(), cache_dir=self.cache_dir)
