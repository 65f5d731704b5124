"""Continue a pre-trained model: a plain fine-tune, and one that replays the pre-training data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from mfff.errors import UserError
from mfff.train.builders import FromCheckpoint
from mfff.train.checkpoints import resolve_checkpoint
from mfff.train.fidelity import Fidelity, HeadStart, evaluated
from mfff.train.policies import Full, ParameterPolicy
from mfff.train.stage import Stage
from mfff.train.strategies.base import Plan, Strategy, require_sources
from mfff.utils.values import choice, positive_number, whole_number


class HeadMode(str, Enum):
    """`strategy.head`: how the fine-tuned head's readout starts."""

    REUSE = "reuse"  # from the pre-trained head `source_head`
    NEW = "new"  # a fresh readout, scaled to the fine-tuning data


class ReferenceMode(str, Enum):
    """`strategy.reference`: where the fine-tuned head's per-element E0 come from."""

    REFIT = "refit"  # fitted on the fine-tuning data
    KEEP = "keep"  # the pre-trained head's (another method's absolute energies, when it is one)


class ReplayHead(str, Enum):
    """`strategy.replay.head`: what a replayed fidelity's pre-trained head does."""

    TRAIN = "train"  # it trains along
    FROZEN = "frozen"  # it stays as it was


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
        key: str = "strategy",
        **source,
    ):
        super().__init__([fidelity], name, trainer, optimizer, scheduler, key)
        self.lr_scale = positive_number(lr_scale, f"{key}.lr_scale")
        unknown = sorted(set(source) - {"from"})
        if unknown:
            raise UserError(f"{key}.{unknown[0]} is not an option of strategy={self.name}")
        self.fidelity, self.source = str(fidelity), source.get("from")
        self.params = params if params is not None else Full()
        self.head = choice(head, HeadMode, f"{self.key}.head")
        self.reference = choice(reference, ReferenceMode, f"{self.key}.reference")
        self.source_head = source_head
        self.eval_pretrain = bool(eval_pretrain)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "params": self.params.describe(),
            "head": self.head.value,
            "source_head": self.source_head,
            "reference": self.reference.value,
            "lr_scale": self.lr_scale,
            "eval_pretrain": self.eval_pretrain,
            "from": str(self.source),
        }

    def _source_head(self, builder: FromCheckpoint) -> str:
        heads = builder.heads
        if self.source_head is not None:
            if self.source_head not in heads:
                raise UserError(f"{self.key}.source_head={self.source_head!r} is not a head of {builder.checkpoint}; "
                                f"its heads are {', '.join(heads)}")  # fmt: skip
            return self.source_head
        if self.fidelity in heads:
            return self.fidelity
        if len(heads) == 1:
            return heads[0]
        raise UserError(
            f"{builder.checkpoint} has heads {', '.join(heads)}; name the one to start from with "
            f"{self.key}.source_head=<fidelity>"
        )

    def stage(self, checkpoint: Path) -> Stage:
        builder = FromCheckpoint(checkpoint, f"{self.key}.from")
        source = self._source_head(builder)
        target = Fidelity(
            self.fidelity,
            head=HeadStart(
                readout_from=source if self.head is HeadMode.REUSE else None,
                reference_from=source if self.reference is ReferenceMode.KEEP else None,
            ),
        )
        kept = [evaluated(h) for h in builder.heads if h != self.fidelity] if self.eval_pretrain else []
        return Stage("finetune", [target, *kept], builder, self.params, config=self.deltas, lr_scale=self.lr_scale)

    def plan(self, cfg, output_dir):
        require_sources(cfg, [self.fidelity], f"{self.key}.fidelity")
        checkpoint = resolve_checkpoint(self.source, f"{self.key}.from")
        stage = self.stage(checkpoint)
        require_sources(cfg, stage.evaluate, f"{self.key}.eval_pretrain (the pre-trained heads)")
        return Plan(stage, source=checkpoint)


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

    def __init__(self, fidelity: str, replay: dict | None = None, **options):
        super().__init__(fidelity, **options)
        replay = dict(replay or {})
        unknown = sorted(set(replay) - {"fidelities", "n", "ratio", "head"})
        if unknown:
            raise UserError(
                f"{self.key}.replay.{unknown[0]} is not an option; the options are fidelities, n, ratio, head"
            )
        self.replayed = [str(f) for f in replay.get("fidelities") or []]
        self.replay_n = whole_number(replay.get("n"), f"{self.key}.replay.n", 1, allow_none=True)
        self.ratio = positive_number(replay.get("ratio", 1.0), f"{self.key}.replay.ratio", "a positive number of "
                                     "replayed structures per fine-tuning structure")  # fmt: skip
        self.replay_head = choice(replay.get("head", "train"), ReplayHead, f"{self.key}.replay.head")
        if self.fidelity in self.replayed:
            raise UserError(f"{self.key}.replay.fidelities names the fine-tuning fidelity {self.fidelity!r}")

    def describe(self) -> dict:
        replay = {"fidelities": self.replayed or "every pre-trained head", "n": self.replay_n, "ratio": self.ratio,
                  "head": self.replay_head.value}  # fmt: skip
        return {**super().describe(), "replay": replay}

    def stage(self, checkpoint: Path) -> Stage:
        plain = super().stage(checkpoint)
        names = self.replayed or [h for h in plain.builder.heads if h != self.fidelity]
        missing = [h for h in names if h not in plain.builder.heads]
        if missing or not names:
            raise UserError(
                f"{self.key}.replay.fidelities: {missing[0] if missing else 'nothing'} to replay through a head of "
                f"{checkpoint} (its heads: {', '.join(plain.builder.heads)})"
            )
        frozen = self.replay_head is ReplayHead.FROZEN
        start = {h: HeadStart(readout_from=h, reference_from=h, frozen=frozen) for h in names}
        replayed = [Fidelity(h, head=start[h], n_train=self.replay_n) for h in names]
        fidelities = [f for f in plain.fidelities if f.name not in names] + replayed
        ratios = {self.fidelity: 1.0, **{h: self.ratio / len(names) for h in names}}
        sampling = {"mode": "ratios", "ratios": ratios, "epoch_fidelity": self.fidelity}
        return Stage(plain.name, fidelities, plain.builder, plain.policy, sampling=sampling, config=self.deltas,
                     lr_scale=self.lr_scale)  # fmt: skip
