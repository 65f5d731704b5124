"""Jobs that need not run again: a run dir whose metrics.json finished with the same resolved config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# settings that change how a run is shown or continued, not what it computes
COSMETIC = ("trainer.enable_progress_bar", "trainer.log_every_n_steps", "resume", "cluster")


def config_fingerprint(cfg: DictConfig) -> str:
    """A hash of the resolved config (what the run computes from), stored in metrics.json as `config_hash`."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in COSMETIC:
        parent, _, leaf = key.rpartition(".")
        node = resolved
        for part in parent.split(".") if parent else []:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished_before(cfg: DictConfig, job: str) -> dict | None:
    """The metrics.json of this run dir when it finished with this config (then the job is skipped, and said so);
    None when it must run: no metrics.json, a run that did not finish, or another config (said so too)."""
    path = Path(cfg.paths.output_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f"mfff-train: {job}: {path} is unreadable; running it again", flush=True)
        return None
    if record.get("status") != "finished":
        print(f"mfff-train: {job}: {path} records status {record.get('status')!r}; running it again", flush=True)
        return None
    if record.get("config_hash") != config_fingerprint(cfg):
        print(f"mfff-train: {job}: {path.parent} finished with another config; running it again with this one",
              flush=True)  # fmt: skip
        return None
    print(f"mfff-train: {job}: {path.parent} finished before with this config; skipped (delete its metrics.json "
          "to run it again)", flush=True)  # fmt: skip
    return record
