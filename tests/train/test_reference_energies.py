"""One molecule's conformers train a model: its metrics stay honest. The energy errors of test structures whose
compositions the training energies cannot determine are reported apart; their forces still count in `test`."""

from tests.train.conftest import train_quick


def test_one_molecule_run_reports_other_molecules_apart(tmp_path):
    record = train_quick(
        tmp_path, "strategy=scratch", "data.fidelity=dft", "+data.sources.dft.molecules=[CH3OH]",
        "data.sources.dft.n_test=null", fidelities=("dft",),
        epochs=2,
    )  # fmt: skip
    metrics = record["metrics"]
    # test_mol's molecule (CH3NH2) has nitrogen, which no training structure has: left out, not guessed
    assert set(metrics) == {"val", "test", "test_unseen_composition"}
    seen, unseen = metrics["test"]["dft"], metrics["test_unseen_composition"]["dft"]
    # the trained molecule's energies sit within eV of their labels; a composition E0 was guessed for, eVs per atom
    assert seen["energy_per_atom_mae"] < 500 < unseen["energy_per_atom_mae"]
    # `test` forces cover both: between the trained molecule's alone and the others'
    assert seen["forces_mae"] < unseen["forces_mae"]
