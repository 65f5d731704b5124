"""One contract for bad input: through the console scripts, every case below exits 2 with one line,
`<program>: error: <message>`, that names the key or file (run in-process, so the catalogue stays fast)."""

import sys

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from mfff.cli import eval as eval_cli
from mfff.cli import label as label_cli
from mfff.cli import train as train_cli

QUICK = [
    "debug=quick", "trainer.max_epochs=1", "data.sources.gfn2.n_train=16", "data.sources.gfn2.n_val=8",
    "data.sources.gfn2.n_test=8", "strategy=scratch", "data.fidelity=gfn2",
]  # fmt: skip

TRAIN_CASES = [
    # Hydra's own config errors
    (
        ["model/backbone=foo"],
        "model/backbone=foo is not an option of model/backbone; choose one of mace, painn, schnet",
    ),
    (["strategy="], "strategy= needs an option; choose one of delta, finetune, multihead, pretrain, pretrain_finetune"),
    (["experiment=nope"], "experiment=nope is not an option of experiment; choose one of architecture, demo"),
    (["data.foo=1"], "data.foo is not a key of the config; check its spelling"),
    (["strategy.nope=3"], "strategy.nope is not a key of the config"),
    (["model/size=[a"], "cannot parse the override 'model/size=[a'"),
    (
        ["paths.cache_dir=/tmp/données"],
        "cannot parse the override 'paths.cache_dir=/tmp/données': its value has non-ASCII characters, which Hydra "
        "takes only in quotes; quote the value, e.g. 'paths.cache_dir=\"/tmp/données\"'",
    ),
    (
        ["strategy=pretrain_finetune", "strategy/params@strategy.finetune.params=most"],
        "strategy/params=most is not an option of strategy/params; choose one of frozen_backbone, full, lora, partial",
    ),
    (
        ["data.sources.gfn2.reader._target_=mfff.data.readers.NoSuchReader"],
        "data.sources.gfn2.reader._target_=mfff.data.readers.NoSuchReader cannot be imported",
    ),  # fmt: skip
    # values that cannot work
    (["seed=abc"], "seed='abc' must be a whole number >= 0"),
    (["seed=1.5"], "seed=1.5 must be a whole number >= 0"),
    (["optimizer.lr=abc"], "optimizer.lr='abc' must be a positive learning rate"),
    (["cutoff=0"], "cutoff=0 must be a positive distance in Å"),
    (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
    (["data.eval_batch_size=-1"], "data.eval_batch_size=-1 must be >= 1"),
    (["data.num_workers=-1"], "data.num_workers=-1 must be >= 0"),
    (["data.neighbours=magic"], "unknown neighbour-list backend 'magic' (data.neighbours)"),
    (["model.dtype=float16"], "model.dtype='float16' must be float32 or float64"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' must be a whole number >= -1"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1 must be a positive number"),
    (["threads=0"], "threads=0 must be 'auto' or a positive whole number"),
    (["data.sources.gfn2.n_train=100000"], "data.sources.gfn2.n_train=100000 but only"),
    (["+data.sources.mine.n_train=5"], "data.sources.mine is not a data source (no _target_; it holds only n_train)"),
    (["data.sources.gfn2.split=weird"], "data.sources.gfn2.split='weird' is unknown; choose one of predefined"),
    (["+data.sources.gfn2.test_fraction=1.5"], "data.sources.gfn2.test_fraction=1.5 must be in [0, 1)"),
    (["data.fidelity=ccsdt"], "strategy.fidelity names fidelity 'ccsdt', which has no source in data.sources"),
    (
        ["+loss.per_fidelity.ccsdt={energy_weight:2}"],
        "loss.per_fidelity names ['ccsdt'], which are not in data.sources",
    ),
    (["resume=/nonexistent/run"], "resume=/nonexistent/run does not exist"),
    (
        ["data.sources.gfn1.fidelity=gfn2"],
        "data.sources.gfn1.fidelity='gfn2' differs from the source's name 'gfn1': the head 'gfn1' would learn gfn2 "
        "labels and be reported as gfn1",
    ),
    # a key the class does not take (e.g. removed in an earlier release), in a source and in its reader
    (
        ["+data.sources.gfn2.val_fraction=0.1"],
        "data.sources.gfn2.val_fraction is not an option of mfff.data.sources.FidelitySource; its options are "
        "fidelity, reader, split,",
    ),
    (
        ["+data.sources.gfn2.reader.foo=1"],
        "data.sources.gfn2.reader.foo is not an option of mfff.data.readers.builtin.BuiltinReader; its options are "
        "fidelity, name; remove it or check its spelling",
    ),
    *(
        [
            (
                ["trainer.accelerator=gpu"],
                "trainer: Lightning cannot run these settings: No supported gpu backend found! "
                "(this machine has no usable GPU: use trainer.accelerator=cpu or auto)",
            )
        ]
        if not torch.cuda.is_available()
        else []  # with a GPU the setting is valid
    ),  # fmt: skip
    (
        ["trainer.max_epochs=-1"],
        "trainer.max_epochs=-1 (no limit) leaves the learning-rate schedule without a length; set trainer.max_steps",
    ),
    # strategies
    (["strategy=multihead", "fidelities=[gfn2]"], "strategy=multihead needs at least two fidelities"),
    (["strategy=finetune"], "strategy.from is not set; give a run dir of mfff-train or a .ckpt file"),
    (["strategy/builder=checkpoint"], "strategy.builder.checkpoint is required (it is ??? in the config)"),
    (
        ["strategy/builder=checkpoint", "strategy.builder.checkpoint=/nonexistent/run"],
        "strategy.builder.checkpoint=/nonexistent/run does not exist",
    ),  # fmt: skip
    (["strategy=finetune", "strategy.from=/nonexistent/run"], "strategy.from=/nonexistent/run does not exist"),
    (["strategy=finetune", "strategy.from=/tmp", "strategy.lr_scale=0"], "strategy.lr_scale=0 must be"),
    # inside pretrain_finetune a stage's options are named by their full key
    (["strategy=pretrain_finetune", "strategy.finetune.head=most"], "strategy.finetune.head='most' is unknown"),
    (["strategy=pretrain_finetune", "strategy.finetune.lr_scale=0"], "strategy.finetune.lr_scale=0 must be"),
    (["strategy=pretrain_finetune", "strategy.pretrain.fidelities=[]"], "strategy.pretrain.fidelities is empty"),
    (["+trainer.new_option=1"], "config key trainer.new_option is not classified"),
    (
        ["strategy=multihead", "fidelities=[gfn1,gfn2]", "strategy.sampling.mode=weird"],
        "strategy.sampling.mode='weird' is unknown; choose one of",
    ),  # fmt: skip
    (
        [
            "strategy=multihead",
            "fidelities=[gfn1,gfn2]",
            "strategy.sampling.mode=ratios",
            "strategy.sampling.ratios={gfn1:-1,gfn2:1}",
        ],
        "strategy.sampling.ratios={'gfn1': -1.0, 'gfn2': 1.0} must be",
    ),  # fmt: skip
    (["data.budget={expensive:dft,cheap:gfn2,total:10}"], "data.budget.fraction is missing; data.budget needs"),
    (["data.budget={expensive:dft,cheap:gfn2,total:10,fraction:0.5,share:1}"], "data.budget.share is not an option"),
]


def _run(module, program: str, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", [program, *args])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    return exit_.value.code, capsys.readouterr().err


def _one_line(err: str, program: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"{program}: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0].removeprefix(f"{program}: error: ")


@pytest.mark.parametrize(("overrides", "message"), TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_mfff_train_refuses_bad_input_in_one_line(overrides, message, tmp_path, monkeypatch, capsys):
    args = [*QUICK, f"hydra.run.dir={tmp_path}", f"paths.cache_dir={tmp_path}/cache", *overrides]
    code, err = _run(train_cli, "mfff-train", args, monkeypatch, capsys)
    assert code == 2, err[-2000:]
    assert _one_line(err, "mfff-train").startswith(message)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "ckpt is required (it is ??? in the config); set it on the command line: ckpt=<value>"),
        (["ckpt=/nonexistent/ckpt"], "ckpt=/nonexistent/ckpt does not exist"),
        (["data=nope", "ckpt=x"], "data=nope is not an option of data; choose one of builtin"),
    ],
)
def test_mfff_eval_refuses_bad_input_in_one_line(args, message, tmp_path, monkeypatch, capsys):
    code, err = _run(eval_cli, "mfff-eval", [*args, f"hydra.run.dir={tmp_path}"], monkeypatch, capsys)
    assert code == 2, err[-2000:]
    assert _one_line(err, "mfff-eval").startswith(message)


def test_mfff_label_refuses_an_unknown_option_in_one_line(tmp_path, monkeypatch, capsys):
    code, err = _run(label_cli, "mfff-label", ["label=nope", f"hydra.run.dir={tmp_path}"], monkeypatch, capsys)
    assert code == 2
    assert _one_line(err, "mfff-label") == "label=nope is not an option of label; choose one of builtin, tiny"


OWN_DATA = [
    "--config-dir", "myconf", "data=mine", "strategy=scratch", "trainer.max_epochs=1",
]  # fmt: skip
OWN_DATA_CASES = [
    # files: missing, a directory, unreadable, or given twice over
    (
        ["strategy=pretrain_finetune", "strategy.pretrain.fidelities=[xtb]", "data.sources.xtb.train=data/gone.xyz"],
        "data file data/gone.xyz (from data.sources.xtb.train) does not exist; check the path or generate the data",
    ),  # the pre-training cache key read the file first: a FileNotFoundError traceback before
    (["data.sources.dft.test=data/gone.xyz"], "data file data/gone.xyz (from data.sources.dft.test) does not exist"),
    (["data.sources.dft.val=data"], "data file data (from data.sources.dft.val) is a directory; give a file in it"),
    (
        ["data.sources.dft.train=null"],
        "data.sources.dft has only test files (test=data/dft_test.xyz); training needs a training file: set "
        "data.sources.dft.train (test files alone serve mfff-eval)",
    ),
    (["data.sources.dft.train=data/empty.xyz"], "ASE cannot read data/empty.xyz: Empty file"),
    (
        ["data.sources.dft.train=data/garbage.xyz"],
        "ASE cannot read data/garbage.xyz: ase.io.extxyz: Expected xyz header",
    ),
    (
        ["data.sources.dft.reader.path=data/dft_train.xyz"],
        "data.sources.dft names both reader.path (data/dft_train.xyz) and train/val/test files; give one",
    ),
    # label keys and units
    (
        ["data.sources.dft.reader.energy_key=E"],
        "energy label key 'E' (reader.energy_key) was not found in data/dft_train.xyz; info keys there include: "
        "energy, molecule",
    ),
    (
        ["data.sources.dft.reader.forces_key=F"],
        "forces label key 'F' (reader.forces_key) was not found in data/dft_train.xyz; per-atom arrays there: forces",
    ),  # the extxyz calculator's `forces` were not listed before ("(none)")
    (
        ["data.sources.dft.reader.energy_unit=furlong"],
        "unknown energy unit 'furlong' in reader.energy_unit; use one of",
    ),
    (["data.sources.dft.reader.length_unit=mile"], "unknown length unit 'mile' in reader.length_unit; use one of"),
    # checkpoints that are not
    (["resume=data/dft_train.xyz"], "data/dft_train.xyz is not a readable PyTorch checkpoint"),
    (
        ["strategy=finetune", "strategy.from=data/dft_train.xyz"],
        "data/dft_train.xyz is not a readable PyTorch checkpoint",
    ),
    (["strategy=finetune", "strategy.from=data"], "strategy.from=data is a directory without a checkpoint"),
]


@pytest.fixture(scope="module")
def own_data_files(tmp_path_factory):
    """The README's own-data file and stand-in data files (its export block), plus an empty and a garbage file."""
    from mfff.data import builtin
    from tests.test_readme import tagged_blocks

    root = tmp_path_factory.mktemp("own_data")
    (config,) = [block for block in tagged_blocks("own-data") if block["file"]]
    (root / config["file"]).parent.mkdir(parents=True)
    (root / config["file"]).write_text(config["code"])
    for name, fidelity in (("xtb", "gfn2"), ("dft", "dft")):
        for split in ("train", "test"):
            builtin.export(root / f"data/{name}_{split}.xyz", fidelity, split, ["HCN", "H2CO"], per_molecule=8)
    (root / "data" / "empty.xyz").write_text("")
    (root / "data" / "garbage.xyz").write_text("garbage here\n")
    return root


@pytest.fixture
def own_data(own_data_files, tmp_path, monkeypatch):
    """A working dir holding the files (the README's relative paths), with its own run dir and cache."""
    for entry in own_data_files.iterdir():
        (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("overrides", "message"), OWN_DATA_CASES, ids=[" ".join(c[0]) for c in OWN_DATA_CASES])
def test_own_data_bad_input_is_one_line(overrides, message, own_data, monkeypatch, capsys):
    args = [*OWN_DATA, f"hydra.run.dir={own_data}/run", f"paths.cache_dir={own_data}/cache", *overrides]
    code, err = _run(train_cli, "mfff-train", args, monkeypatch, capsys)
    assert code == 2, err[-2000:]
    assert _one_line(err, "mfff-train").startswith(message)
    assert not (own_data / "run" / "metrics.json").exists()


def test_mfff_eval_bad_test_file_input_is_one_line(multihead_run, tmp_path, monkeypatch, capsys):
    checkpoint = multihead_run[1]["best_checkpoint"]
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(open(checkpoint, "rb").read()[:5000])  # a copy cut short, as by a full disk
    cases = [
        ([f"ckpt={checkpoint}", "test=gone.xyz", "head=gfn2"], "data file gone.xyz (from test) does not exist"),
        (
            [f"ckpt={checkpoint}", f"test={checkpoint}", "head=dft"],
            "head=dft is not a head of the checkpoint; its heads: gfn1, gfn2",
        ),  # fmt: skip
        ([f"ckpt={truncated}", f"test={checkpoint}"], f"{truncated} is not a readable PyTorch checkpoint"),
        (
            [f"ckpt={checkpoint}", f"test={checkpoint}"],
            f"test={checkpoint}: the checkpoint has heads gfn1, gfn2; say which fidelity the file's labels are with "
            "head=<one of them>",
        ),
    ]
    for args, message in cases:
        code, err = _run(eval_cli, "mfff-eval", [*args, f"hydra.run.dir={tmp_path}/eval"], monkeypatch, capsys)
        assert code == 2, err[-2000:]
        assert _one_line(err, "mfff-eval").startswith(message), args
