"""Config values that cannot work are refused before any data is read, each with the key and the fix."""

from __future__ import annotations

from omegaconf import DictConfig

from mfff.utils.values import positive_number, whole_number

# Lightning Trainer settings that take a whole number: (smallest allowed value, whether null is allowed)
TRAINER_INTEGERS = {
    "max_epochs": (-1, True),
    "min_epochs": (0, True),
    "max_steps": (-1, False),
    "log_every_n_steps": (1, True),
    "check_val_every_n_epoch": (1, True),
    "accumulate_grad_batches": (1, False),
    "num_sanity_val_steps": (-1, True),
}


def check_train_config(cfg: DictConfig) -> None:
    """The values every run uses (data settings are checked by the data module and its sources)."""
    whole_number(cfg.seed, "seed", 0)
    positive_number(cfg.cutoff, "cutoff", "a positive distance in Å (the neighbour-list and model cutoff)")
    positive_number(cfg.optimizer.get("lr"), "optimizer.lr", "a positive learning rate, e.g. optimizer.lr=1e-3")
    for key, (minimum, allow_none) in TRAINER_INTEGERS.items():
        if key in cfg.trainer:
            whole_number(cfg.trainer[key], f"trainer.{key}", minimum, allow_none)
    clip = cfg.trainer.get("gradient_clip_val")
    if clip is not None and clip != 0:
        positive_number(clip, "trainer.gradient_clip_val", "a positive number, or null for no clipping")
