"""Training strategies as small objects: which stages run, on which fidelities, from which weights.

A new strategy is a new class. Each one turns the composed config into one or more `Stage`s and runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfff.errors import UserError
from mfff.train.builders import FromCheckpoint, FromScratch, pretrain_record
from mfff.train.checkpoints import resolve_checkpoint
from mfff.train.checks import check_train_config
from mfff.train.fidelity import Fidelity, HeadStart, evaluated
from mfff.train.policies import Full, ParameterPolicy
from mfff.train.pretrain_cache import PretrainCache, cache_key
from mfff.train.stage import Stage, StageResult, run_stage, stage_config
from mfff.utils.instantiate import instantiate
from mfff.utils.values import positive_number, whole_number


@dataclass
class Outcome:
    """A strategy's result: the final stage, plus what the pre-training was (if there was one)."""

    result: StageResult
    pretrain: dict | None = None
    n_train: dict = field(default_factory=dict)  # every label used, over all stages
    label_cost: dict = field(default_factory=dict)


def _require_sources(cfg: DictConfig, names: list[str], key: str) -> None:
    available = sorted(cfg.data.sources)
    for name in names:
        if name not in available:
            raise UserError(
                f"{key} names fidelity {name!r}, which has no source in data.sources ({', '.join(available)}); "
                "add a source for it or pick one of those"
            )


def _outcome(result: StageResult, pretrain: dict | None = None) -> Outcome:
    n_train = {f: s["n_train"] for f, s in result.stats.items()}
    cost = {f: s["label_cost"] for f, s in result.stats.items()}
    if pretrain:  # the pre-training labels are part of what this model cost
        n_train = {**pretrain.get("n_train", {}), **n_train}
        cost = {**pretrain.get("label_cost_cpu_s", {}), **cost}
    return Outcome(result, pretrain, n_train, cost)


class Strategy:
    """Args:
    trainer, optimizer, scheduler: deltas over the root config groups for this strategy's stage, e.g.
        {max_epochs: 50}; used where a strategy is one stage of another (`PretrainFinetune`).
    """

    name: str = "strategy"

    def __init__(
        self,
        fidelities: list[str],
        name: str | None = None,
        trainer: dict | None = None,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
    ):
        self.name = name or self.name
        self.fidelities = sorted(str(f) for f in fidelities)
        if not self.fidelities:
            raise UserError(f"strategy={self.name} has no fidelities to train on (strategy.fidelities)")
        self.deltas = {"trainer": trainer, "optimizer": optimizer, "scheduler": scheduler}

    def describe(self) -> dict:
        return {"name": self.name, "fidelities": self.fidelities}

    def run(self, cfg: DictConfig, output_dir: Path, resume: str | None = None) -> Outcome:
        raise NotImplementedError


class Joint(Strategy):
    """Train heads for `fidelities` from random weights, all at once, in one stage.

    Args:
        use_forces: False trains on energies only: zero force-loss weight, force labels never read.
        sampling: how batches mix the fidelities (mfff.data.sampler.Composition), e.g. {mode: fixed, fixed: {dft: 4}}.
    """

    name = "joint"
    key = "strategy.fidelities"

    def __init__(
        self,
        fidelities: list[str],
        use_forces: bool = True,
        sampling: dict | None = None,
        builder: FromScratch | FromCheckpoint | None = None,
        **common,
    ):
        super().__init__(fidelities, **common)
        self.use_forces, self.sampling = bool(use_forces), dict(sampling or {})
        self.builder = builder if builder is not None else FromScratch()

    def describe(self) -> dict:
        return {**super().describe(), "use_forces": self.use_forces, "sampling": self.sampling,
                "builder": self.builder.describe()}  # fmt: skip

    def stage(self) -> Stage:
        # from a checkpoint (a warm start), a head whose fidelity the checkpoint has starts from it, E0 re-fitted
        loaded = self.builder.heads if isinstance(self.builder, FromCheckpoint) else []
        fidelities = [
            Fidelity(f, forces=self.use_forces, head=HeadStart(readout_from=f if f in loaded else None))
            for f in self.fidelities
        ]
        return Stage(self.name, fidelities, self.builder, sampling=self.sampling, config=self.deltas)

    def run(self, cfg, output_dir, resume=None):
        _require_sources(cfg, self.fidelities, self.key)
        return _outcome(run_stage(cfg, self.stage(), output_dir, resume))


class Scratch(Joint):
    """One fidelity, one head, trained from random weights (the expensive-data-only baseline)."""

    name = "scratch"
    key = "strategy.fidelity"

    def __init__(self, fidelity: str, use_forces: bool = True, **common):
        super().__init__([fidelity], use_forces, **common)


class Pretrain(Joint):
    """Train on one or more (cheap) fidelities; the checkpoint is what `strategy=finetune` starts from."""

    name = "pretrain"


class MultiHead(Joint):
    """One shared backbone and one head per fidelity, trained on all of them at once."""

    name = "multihead"

    def __init__(self, fidelities: list[str], use_forces: bool = True, sampling=None, **common):
        super().__init__(fidelities, use_forces, sampling, **common)
        if len(self.fidelities) < 2:
            raise UserError(
                f"strategy=multihead needs at least two fidelities, got {self.fidelities} "
                "(fidelities / strategy.fidelities); use strategy=scratch for one"
            )


HEAD_CHOICES = {"reuse": True, "new": False}  # whether the readout starts from the pre-trained head
REFERENCE_CHOICES = {"refit": False, "keep": True}  # whether E0 is kept from the pre-trained head


def _choice(value: str, choices: dict, key: str) -> bool:
    if value not in choices:
        raise UserError(f"{key}={value!r} is unknown; choose one of {', '.join(choices)}")
    return choices[value]


class Finetune(Strategy):
    """Continue a pre-trained model on `fidelity`.

    Args:
        from: the pre-trained .ckpt or run dir (`strategy.from`; `from` is a Python keyword, hence **source).
        params: which parameters train, a `mfff.train.policies` object (conf/strategy/params/: full,
            frozen_backbone, partial).
        head: 'reuse' starts the readout from the pre-trained head `source_head`; 'new' starts a fresh one.
        source_head: the pre-trained head to reuse or take E0 from; default: the one named like `fidelity`, or
            the checkpoint's only head.
        reference: 'refit' fits the head's per-element E0 on the fine-tuning data; 'keep' keeps the pre-trained
            head's E0 (which belongs to another method's absolute energies).
        eval_pretrain: keep the pre-trained heads (frozen) and evaluate their fidelities' val/test sets every
            epoch, to measure forgetting.
        lr_scale: the fine-tune trains at this times the learning rate it is given (optimizer.lr, or the
            fine-tune's own optimizer delta). PaiNN at 50 DFT labels after GFN2 pre-training: 0.2 (1e-3) gave a
            test force MAE of 64-67 meV/Å, 1 (5e-3) 95-109.
    """

    name = "finetune"

    def __init__(
        self,
        fidelity: str,
        params: ParameterPolicy | None = None,
        head: str = "reuse",
        source_head: str | None = None,
        reference: str = "refit",
        eval_pretrain: bool = False,
        lr_scale: float = 0.2,
        name: str | None = None,
        trainer: dict | None = None,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        **source,
    ):
        super().__init__([fidelity], name, trainer, optimizer, scheduler)
        self.lr_scale = positive_number(lr_scale, "lr_scale (strategy.lr_scale, or strategy.finetune.lr_scale)")
        unknown = sorted(set(source) - {"from"})
        if unknown:
            raise UserError(f"strategy={self.name} has no option {unknown[0]!r}")
        self.fidelity, self.source = str(fidelity), source.get("from")
        self.params = params if params is not None else Full()
        self.head, self.reference, self.source_head = head, reference, source_head
        self.reuse_readout = _choice(head, HEAD_CHOICES, "strategy.head")
        self.keep_reference = _choice(reference, REFERENCE_CHOICES, "strategy.reference")
        self.eval_pretrain = bool(eval_pretrain)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "params": self.params.describe(),
            "head": self.head,
            "source_head": self.source_head,
            "reference": self.reference,
            "lr_scale": self.lr_scale,
            "eval_pretrain": self.eval_pretrain,
            "from": str(self.source),
        }

    def _source_head(self, builder: FromCheckpoint) -> str:
        heads = builder.heads
        if self.source_head is not None:
            if self.source_head not in heads:
                raise UserError(f"strategy.source_head={self.source_head!r} is not a head of {builder.checkpoint}; "
                                f"its heads are {', '.join(heads)}")  # fmt: skip
            return self.source_head
        if self.fidelity in heads:
            return self.fidelity
        if len(heads) == 1:
            return heads[0]
        raise UserError(
            f"{builder.checkpoint} has heads {', '.join(heads)}; name the one to start from with "
            "strategy.source_head=<fidelity>"
        )

    def stage(self, checkpoint: Path) -> Stage:
        builder = FromCheckpoint(checkpoint, "strategy.from")
        source = self._source_head(builder)
        target = Fidelity(
            self.fidelity,
            head=HeadStart(
                readout_from=source if self.reuse_readout else None,
                reference_from=source if self.keep_reference else None,
            ),
        )
        kept = [evaluated(h) for h in builder.heads if h != self.fidelity] if self.eval_pretrain else []
        return Stage("finetune", [target, *kept], builder, self.params, config=self.deltas, lr_scale=self.lr_scale)

    def run(self, cfg, output_dir, resume=None):
        _require_sources(cfg, [self.fidelity], "strategy.fidelity")
        checkpoint = resolve_checkpoint(self.source, "strategy.from")
        stage = self.stage(checkpoint)
        _require_sources(cfg, stage.evaluate, "strategy.eval_pretrain (the pre-trained heads)")
        return _outcome(run_stage(cfg, stage, output_dir, resume), pretrain_record(checkpoint))


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
        _require_sources(cfg, self.pretrainer.fidelities, "strategy.pretrain.fidelities")
        _require_sources(cfg, [self.finetuner.fidelity], "strategy.finetune.fidelity")
        # the fine-tune's own settings are checked now, not after the pre-training has run
        check_train_config(stage_config(cfg, output_dir, self.finetuner.deltas))
        stage = self.pretrainer.stage()
        key, settings = cache_key(cfg, stage)
        entry, status = self.cache.get_or_build(key, settings, lambda directory: run_stage(cfg, stage, directory))
        checkpoint = PretrainCache.checkpoint(entry)
        pretrain = {**pretrain_record(checkpoint), "key": key, "cache": status}
        return _outcome(run_stage(cfg, self.finetuner.stage(checkpoint), output_dir, resume), pretrain)


class ReplayFinetune(Finetune):
    """Fine-tune on `fidelity` while replaying pre-training structures through their pre-trained heads, so the
    backbone keeps serving them (mace-torch's multihead fine-tuning; its authors found replay alone kept
    out-of-distribution robustness).

    Args (besides Finetune's):
        replay: {fidelities: the replayed pre-training fidelities (default: every head of the checkpoint but the
            target), n: how many of each one's training structures are replayed (a prefix of its seeded order, so
            the pre-training's own structures; null: all), ratio: replayed structures per fine-tuning structure in
            every batch, head: train (the pre-trained head trains along) or frozen (it stays as it was)}.
    """

    name = "replay_finetune"
    HEAD_CHOICES = ("train", "frozen")

    def __init__(self, fidelity: str, replay: dict | None = None, **options):
        super().__init__(fidelity, **options)
        replay = dict(replay or {})
        unknown = sorted(set(replay) - {"fidelities", "n", "ratio", "head"})
        if unknown:
            raise UserError(
                f"strategy.replay.{unknown[0]} is not an option; the options are fidelities, n, ratio, head"
            )
        self.replayed = [str(f) for f in replay.get("fidelities") or []]
        self.replay_n = whole_number(replay.get("n"), "strategy.replay.n", 1, allow_none=True)
        self.ratio = positive_number(replay.get("ratio", 1.0), "strategy.replay.ratio", "a positive number of "
                                     "replayed structures per fine-tuning structure")  # fmt: skip
        self.replay_head = replay.get("head", "train")
        if self.replay_head not in self.HEAD_CHOICES:
            raise UserError(f"strategy.replay.head={self.replay_head!r} is unknown; choose one of train, frozen")
        if self.fidelity in self.replayed:
            raise UserError(f"strategy.replay.fidelities names the fine-tuning fidelity {self.fidelity!r}")

    def describe(self) -> dict:
        replay = {"fidelities": self.replayed or "every pre-trained head", "n": self.replay_n, "ratio": self.ratio,
                  "head": self.replay_head}  # fmt: skip
        return {**super().describe(), "replay": replay}

    def stage(self, checkpoint: Path) -> Stage:
        plain = super().stage(checkpoint)
        names = self.replayed or [h for h in plain.builder.heads if h != self.fidelity]
        missing = [h for h in names if h not in plain.builder.heads]
        if missing or not names:
            raise UserError(
                f"strategy.replay.fidelities: {missing[0] if missing else 'nothing'} to replay through a head of "
                f"{checkpoint} (its heads: {', '.join(plain.builder.heads)})"
            )
        start = {h: HeadStart(readout_from=h, reference_from=h, frozen=self.replay_head == "frozen") for h in names}
        fidelities = [f for f in plain.fidelities if f.name not in names] + [Fidelity(h, head=start[h]) for h in names]
        ratios = {self.fidelity: 1.0, **{h: self.ratio / len(names) for h in names}}
        sampling = {"mode": "ratios", "ratios": ratios, "epoch_fidelity": self.fidelity}
        config = dict(self.deltas)
        if self.replay_n is not None:
            config["data"] = {"sources": {h: {"n_train": self.replay_n} for h in names}}
        return Stage(plain.name, fidelities, plain.builder, plain.policy, sampling=sampling, config=config,
                     lr_scale=self.lr_scale)  # fmt: skip


class Delta(Strategy):
    """Learn `fidelity` minus `base` on the conformers that carry both labels (Δ-learning, the classical baseline
    of multi-fidelity papers). At inference the base method runs and the learned Δ is added (the calculator,
    mfff-eval). Test errors are the total's: they equal the Δ's, because the base is computed exactly, which is
    checked against the stored base labels before training.

    Args:
        base_labeller: the method that labelled the base fidelity, a `mfff.label.labellers` config.
    """

    name = "delta"
    CHECKED = 3  # stored base labels the labeller must reproduce before anything trains
    TOLERANCE = 1e-4  # eV/atom

    def __init__(self, fidelity: str, base: str, base_labeller: dict | None = None, use_forces: bool = True, **common):
        super().__init__([fidelity], **common)
        self.fidelity, self.base, self.use_forces = str(fidelity), str(base), bool(use_forces)
        if not base_labeller:
            raise UserError(
                f"strategy.base_labeller is not set: a Δ-model needs its base method ({self.base}) at inference; give "
                "the labeller that computed its labels, e.g. {_target_: mfff.label.labellers.xtb.XTBLabeller, "
                "method: GFN2-xTB}"
            )
        if self.base == self.fidelity:
            raise UserError(f"strategy.base={self.base!r} is the fidelity it learns; name a cheaper one")
        self.base_labeller = OmegaConf.to_container(OmegaConf.create(base_labeller), resolve=True)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "base": self.base,
            "base_labeller": self.base_labeller,
            "use_forces": self.use_forces,
        }

    def stage(self) -> Stage:
        delta = Fidelity(self.fidelity, forces=self.use_forces, base=self.base, base_labeller=self.base_labeller)
        return Stage(self.name, [delta], config=self.deltas)

    def check_labeller(self, cfg: DictConfig) -> None:
        labeller = instantiate(self.base_labeller, key="strategy.base_labeller")
        source = instantiate(cfg.data.sources[self.base], key=f"data.sources.{self.base}")
        for structure in source.all_structures()[: self.CHECKED]:
            off = abs(labeller.compute(structure.numbers, structure.positions).energy - structure.energy) / len(
                structure
            )
            if not off <= self.TOLERANCE:
                raise UserError(
                    f"strategy.base_labeller ({labeller.method}) does not reproduce the {self.base} labels of "
                    f"data.sources.{self.base} ({off:.3g} eV/atom off on a {structure.group} structure); set it to "
                    "the method that computed them"
                )

    def run(self, cfg, output_dir, resume=None):
        _require_sources(cfg, [self.fidelity], "strategy.fidelity")
        _require_sources(cfg, [self.base], "strategy.base")
        self.check_labeller(cfg)
        return _outcome(run_stage(cfg, self.stage(), output_dir, resume))
