import json

from mfff.runs.run import train
from tests.helpers import compose_config

QUICK = [
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "data.batch_size=8",
    "model/size=s",
]


def quick_overrides(tmp_path, fidelities=("gfn1", "gfn2"), n_train=48, epochs=3):
    """Small sizes for `fidelities`; multi-head over exactly those unless the caller picks another strategy."""
    sizes = []
    for f in fidelities:
        sizes += [f"data.sources.{f}.n_train={n_train}", f"data.sources.{f}.n_val=16", f"data.sources.{f}.n_test=32"]
    return [f"paths.output_dir={tmp_path}", f"trainer.max_epochs={epochs}", *sizes, *QUICK]


def train_quick(tmp_path, *extra, fidelities=("gfn1", "gfn2"), n_train=48, epochs=3):
    chosen = any(e.startswith("strategy=") for e in extra)
    strategy = [] if chosen else [f"strategy.fidelities=[{','.join(fidelities)}]"]
    cfg = compose_config("train", [*quick_overrides(tmp_path, fidelities, n_train, epochs), *strategy, *extra])
    train(cfg, {"model/backbone": cfg.model.backbone._target_.rsplit(".", 1)[-1].lower(), "model/size": "s"})
    return json.loads((tmp_path / "metrics.json").read_text())
