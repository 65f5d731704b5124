"""Label budgets (partial replacement), nested subsets and molecule-disjoint training pools on the built-in data."""

import hydra
import pytest

from mfff.errors import UserError
from tests.helpers import compose_config


def _data(*overrides, fidelities=("dft", "gfn2")):
    cfg = compose_config("train", ["paths.output_dir=/tmp/mfff-budget-test", *overrides])
    data = hydra.utils.instantiate(cfg.data, fidelities=list(fidelities), _convert_="all")
    data.setup("fit")
    return data


def _ids(structures) -> set:
    return {(s.group, s.positions.tobytes()) for s in structures}


def test_training_subsets_nest():
    small, large = _data("data.sources.dft.n_train=100"), _data("data.sources.dft.n_train=250")
    assert _ids(small.sources["dft"].train) < _ids(large.sources["dft"].train)
    assert _ids(small.sources["dft"].val) == _ids(large.sources["dft"].val)


def test_count_budget_splits_by_fraction_and_nests():
    budget = "+data.budget={expensive: dft, cheap: gfn2, total: 400, fraction: 0.25}"
    data = _data(budget)
    assert len(data.sources["dft"].train) == 100 and len(data.sources["gfn2"].train) == 300
    bigger = _data(budget.replace("400", "800"))
    for f in ("dft", "gfn2"):
        assert _ids(data.sources[f].train) < _ids(bigger.sources[f].train)
    assert data.stats()["dft"].n_train == 100


def test_cost_budget_spends_within_the_budget():
    data = _data("+data.budget={expensive: dft, cheap: gfn2, cost: 300.0, fraction: 0.99}")
    dft, gfn2 = data.sources["dft"], data.sources["gfn2"]
    dft_cost, gfn2_cost = dft.label_cost, gfn2.label_cost
    next_label = dft.training_pool()[len(dft.train)].cost
    assert dft_cost <= 297.0 < dft_cost + next_label  # the longest prefix within the expensive share
    assert dft_cost + gfn2_cost <= 300.0
    assert len(gfn2.train) > 10 * len(dft.train)  # a GFN2-xTB label costs ~1/1000 of a DFT one


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("{expensive: dft, cheap: gfn2, total: 100000, fraction: 0.5}", "needs 50000 dft training labels but"),
        ("{expensive: dft, cheap: gfn2, cost: 1e9, fraction: 0.5}", "but all its .* training labels cost only"),
        ("{expensive: dft, cheap: gfn2, total: 10, cost: 10, fraction: 0.5}", "set exactly one of"),
        ("{expensive: dft, cheap: gfn2, total: 10, fraction: 1.5}", "data.budget.fraction=1.5 must lie between"),
        ("{expensive: dft, cheap: xtb, total: 10, fraction: 0.5}", "data.budget.cheap='xtb' has no source"),
    ],
)
def test_budgets_the_data_cannot_meet_are_named(budget, message):
    with pytest.raises(UserError, match=message):
        _data(f"+data.budget={budget}")


def test_budget_and_explicit_size_conflict():
    with pytest.raises(UserError, match="remove data.sources.dft.n_train"):
        _data("+data.budget={expensive: dft, cheap: gfn2, total: 10, fraction: 0.5}", "data.sources.dft.n_train=5")


def test_pretraining_pool_can_exclude_the_molecules_with_dft_labels():
    data = _data("+data.sources.gfn2.exclude_molecules_of=[dft]", fidelities=("gfn2",))
    dft_molecules = data.all_sources["dft"].groups()
    gfn2 = data.sources["gfn2"]
    assert not {s.group for s in gfn2.train + gfn2.val} & dft_molecules
    assert len({s.group for s in gfn2.train}) >= 5
    assert {s.group for s in gfn2.tests["test"]} & dft_molecules  # test sets stay whole, errors stay comparable


def test_molecule_lists_select_and_are_checked():
    data = _data("+data.sources.gfn2.molecules=[C2H2,HCN]", fidelities=("gfn2",))
    assert {s.group for s in data.sources["gfn2"].train} == {"C2H2", "HCN"}
    with pytest.raises(UserError, match="name \\['Unobtainium'\\], which are not in the training pool"):
        _data("+data.sources.gfn2.exclude_molecules=[Unobtainium]", fidelities=("gfn2",))


def test_excluding_the_molecules_of_itself_or_of_nothing_is_refused():
    for target in ("gfn2", "xtb"):
        with pytest.raises(UserError, match=f"exclude_molecules_of names '{target}'; name other sources"):
            _data(f"+data.sources.gfn2.exclude_molecules_of=[{target}]", fidelities=("gfn2",))
