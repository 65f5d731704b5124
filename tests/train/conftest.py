import json

from mfff.runs.run import train
from tests.helpers import compose_config

QUICK = ["debug=quick", "model/size=s"]  # conf/debug/quick.yaml: 48/16/32 structures a source, no progress bar


def quick_overrides(tmp_path, fidelities=("gfn1", "gfn2"), n_train=48, epochs=3):
    """debug=quick with `n_train` structures of `fidelities`; multi-head over exactly those unless the caller picks
    another strategy."""
    sizes = [f"data.sources.{f}.n_train={n_train}" for f in fidelities if n_train != 48]
    return [f"paths.output_dir={tmp_path}", *QUICK, f"trainer.max_epochs={epochs}", *sizes]


def train_quick(tmp_path, *extra, fidelities=("gfn1", "gfn2"), n_train=48, epochs=3):
    chosen = any(e.startswith("strategy=") for e in extra)
    strategy = [] if chosen else [f"strategy.fidelities=[{','.join(fidelities)}]"]
    cfg = compose_config("train", [*quick_overrides(tmp_path, fidelities, n_train, epochs), *strategy, *extra])
    train(cfg, {"model/backbone": cfg.model.backbone._target_.rsplit(".", 1)[-1].lower(), "model/size": "s"})
    return json.loads((tmp_path / "metrics.json").read_text())
