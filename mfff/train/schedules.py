"""Learning-rate schedules as small config objects: `build(optimizer, total_steps)` -> Lightning scheduler dict."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau


class WarmupCosine:
    """Linear warm-up over `warmup_fraction` of all steps, then cosine decay to `min_lr_ratio` x the base LR."""

    needs_length = True  # the run's total steps

    def __init__(self, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.01):
        self.warmup_fraction, self.min_lr_ratio = warmup_fraction, min_lr_ratio

    def build(self, optimizer, total_steps: int, monitor: str) -> dict:
        warmup = max(1, int(self.warmup_fraction * total_steps))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


class Plateau:
    """Reduce the LR by `factor` when the monitored validation metric stalls for `patience` epochs."""

    needs_length = False

    def __init__(self, factor: float = 0.5, patience: int = 5, min_lr: float = 1e-6):
        self.factor, self.patience, self.min_lr = factor, patience, min_lr

    def build(self, optimizer, total_steps: int | None, monitor: str) -> dict:
        scheduler = ReduceLROnPlateau(optimizer, factor=self.factor, patience=self.patience, min_lr=self.min_lr)
        return {"scheduler": scheduler, "interval": "epoch", "monitor": monitor}
