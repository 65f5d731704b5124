"""Overrides below the config's open nodes (stage deltas, per-fidelity loss weights) work as written, without `+`."""

import subprocess
import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mfff.cli.overrides import open_overrides
from tests.helpers import compose_config


def test_keys_below_open_nodes_are_added_and_nothing_else_is_touched():
    given = ["strategy.pretrain.trainer.max_epochs=50", "strategy.finetune.optimizer.lr=1e-3",
             "strategy.trainer.max_epochs=5", "loss.per_fidelity={dft:{energy_weight:5}}",
             "loss.per_fidelity.cc.energy_weight=2", "+strategy.finetune.trainer.max_steps=9", "trainer.max_epochs=3",
             "strategy/params@strategy.finetune.params=partial", "strategy.finetune.head=new", "-m",
             "~callbacks.ema"]  # fmt: skip
    assert open_overrides(given) == [
        "++strategy.pretrain.trainer.max_epochs=50", "++strategy.finetune.optimizer.lr=1e-3",
        "++strategy.trainer.max_epochs=5", "++loss.per_fidelity={dft:{energy_weight:5}}",
        "++loss.per_fidelity.cc.energy_weight=2", *given[5:],
    ]  # fmt: skip
    swept = OverridesParser.create().parse_overrides(open_overrides(["strategy.finetune.trainer.max_epochs=10,20"]))
    assert swept[0].is_sweep_override() and list(swept[0].sweep_string_iterator()) == ["10", "20"]


def test_a_stage_delta_composes_without_a_plus():
    cfg = compose_config("train", ["strategy=pretrain_finetune", "strategy.pretrain.trainer.max_epochs=50",
                                   "loss.per_fidelity={dft:{energy_weight:5}}", "paths.output_dir=/tmp/x"])  # fmt: skip
    assert cfg.strategy.pretrain.trainer.max_epochs == 50 and cfg.trainer.max_epochs == 100
    assert cfg.loss.per_fidelity.dft.energy_weight == 5


def test_the_cli_takes_a_stage_delta_as_the_readme_writes_it():
    printed = subprocess.run([sys.executable, "-m", "mfff.cli.train", "strategy=pretrain_finetune",
                              "strategy.finetune.trainer.max_epochs=7", "--cfg", "job"], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert printed.returncode == 0, printed.stderr[-2000:]
    strategy = OmegaConf.create(printed.stdout).strategy
    assert strategy.finetune.trainer == {"max_epochs": 7} and strategy.pretrain.trainer == {}
