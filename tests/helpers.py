"""Shared test helpers."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from mfff.cli.overrides import open_overrides
from mfff.config import conf_dir


def compose_config(name: str, overrides: list[str] | None = None, hydra: bool = False):
    """Compose a root config (e.g. 'label') the way the console script does, with overrides; `hydra`: keep Hydra's
    own node (launcher, sweep dirs) in it."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        overrides = open_overrides(list(overrides or [])) if name == "train" else list(overrides or [])
        return compose(config_name=name, overrides=overrides, return_hydra_config=hydra)


def trivial_errors(cfg, fidelity: str, test_set: str = "test") -> dict:
    """Errors of the two trivial models on a fidelity's test set (or "val"), as metrics.json reports them: per-element
    reference energies (E0) fitted on its training set (`energy_mae` meV, `energy_per_atom_mae` meV/atom) and zero
    forces (`forces_mae` meV/Å). A trained model that learned anything beats both."""
    import numpy as np

    from mfff.utils.instantiate import instantiate

    data = instantiate(cfg.data, fidelities=[fidelity], _convert_="all")
    data.setup("fit")
    source = data.sources[fidelity]
    e0 = source.stats().e0
    structures = source.val if test_set == "val" else source.tests[test_set]
    residual = np.array([s.energy - e0[s.numbers].sum() for s in structures])
    per_atom = residual / np.array([len(s) for s in structures])
    forces = [s.forces for s in structures if s.forces is not None]
    return {
        "energy_mae": 1000 * float(np.mean(np.abs(residual))),
        "energy_per_atom_mae": 1000 * float(np.mean(np.abs(per_atom))),
        "forces_mae": 1000 * float(np.mean(np.abs(np.concatenate(forces)))) if forces else None,
    }


def assert_learnt(value: float, trivial: float, what: str, at_most: float = 0.7) -> None:
    """A trained model's error is at most `at_most` x the trivial model's (E0 only, zero forces). A model that learnt
    nothing sits at about 1x (measured 0.84-1.04 after 2-4 epochs of 48 structures); a unit slip or a head reading
    another fidelity's labels lands far above."""
    assert 0 < value <= at_most * trivial, f"{what}: {value:.1f} vs the trivial model's {trivial:.1f} (<= {at_most}x)"


def assert_units_plausible(value: float, trivial: float, what: str) -> None:
    """For smoke runs too short to learn (one epoch): the error is on the trivial model's scale, so a unit slip (eV for
    meV, Ha for eV) is caught. It does not show learning: `assert_learnt` does, on runs long enough to learn."""
    assert 0.05 * trivial < value < 3 * trivial, f"{what}: {value:.1f} vs the trivial model's {trivial:.1f}"
