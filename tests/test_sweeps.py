"""A real 2x2 Hydra multirun of pre-train -> fine-tune through the basic launcher."""

import json

from tests.test_cli import _run
from tests.train.conftest import QUICK


def test_two_by_two_sweep_pretrains_once_and_records_its_overrides(tmp_path):
    sizes = [
        "data.sources.gfn2.n_train=48",
        "data.sources.gfn2.n_val=16",
        "data.sources.gfn2.n_test=16",
        "data.sources.dft.n_val=16",
        "data.sources.dft.n_test=16",
    ]
    result = _run(
        [
            "-m",
            "mfff.cli.train",
            "-m",
            "strategy=pretrain_finetune",
            "data.sources.dft.n_train=16,32",
            "strategy.finetune.train=full,frozen_backbone",
            "+strategy.pretrain.trainer.max_epochs=2",
            "trainer.max_epochs=1",
            f"paths.cache_dir={tmp_path}/cache",
            f"hydra.sweep.dir={tmp_path}/sweep",
            *sizes,
            *QUICK,
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "sweep").glob("*/metrics.json"), key=lambda p: int(p.parent.name))
    assert len(runs) == 4
    metrics = [json.loads(p.read_text()) for p in runs]
    assert [m["pretrain"]["cache"] for m in metrics].count("built") == 1
    assert [m["pretrain"]["cache"] for m in metrics].count("reused") == 3
    assert len({m["pretrain"]["checkpoint"] for m in metrics}) == 1
    assert len(list((tmp_path / "cache" / "pretrain").glob("*/checkpoints/best.ckpt"))) == 1
    seen = set()
    for m in metrics:
        n_train = next(o for o in m["overrides"] if o.startswith("data.sources.dft.n_train="))
        mode = next(o for o in m["overrides"] if o.startswith("strategy.finetune.train="))
        assert m["n_train"] == {"gfn2": 48, "dft": int(n_train.split("=")[1])}
        assert m["strategy"]["finetune"]["train"] == mode.split("=")[1]
        assert m["metrics"]["test"]["dft"]["forces_mae"] > 0
        seen.add((n_train, mode))
    assert len(seen) == 4
