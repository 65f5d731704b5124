"""The analyses' arithmetic against known answers: log-log fits, representation similarity, Pareto front, planner."""

import numpy as np
import pytest

from mfff.analyze.fit import loglog_fit
from mfff.analyze.planner import Point, pareto_front, plan
from mfff.analyze.similarity import linear_cka, mean_cca
from mfff.errors import UserError


def _loglinear(rng, n, slope=0.7, intercept=0.4, noise=0.05):
    x = 10 ** rng.uniform(0.5, 2.5, n)
    y = 10 ** (intercept + slope * np.log10(x) + rng.normal(0, noise, n))
    return x, y


def test_the_fit_recovers_slope_intercept_and_r2():
    exact = loglog_fit([1, 10, 100, 1000], [3, 3 * 10**0.5, 30, 30 * 10**0.5])
    assert exact.slope == pytest.approx(0.5) and exact.intercept == pytest.approx(np.log10(3))
    assert exact.r2 == pytest.approx(1.0) and exact.slope_ci == pytest.approx((0.5, 0.5))
    np.testing.assert_allclose(exact.predict([10000]), [300])
    x, y = _loglinear(np.random.default_rng(0), 200)
    fit = loglog_fit(x, y)
    assert fit.slope == pytest.approx(0.7, abs=0.02) and fit.intercept == pytest.approx(0.4, abs=0.04)
    # R² = 1 - noise variance / total variance of log y: slope 0.7 over log x uniform on [0.5, 2.5]
    expected_r2 = 1 - 0.05**2 / (0.7**2 * 2.0**2 / 12 + 0.05**2)
    assert fit.r2 == pytest.approx(expected_r2, abs=0.02)
    low, high = fit.band([30.0])
    assert low[0] < fit.predict([30.0])[0] < high[0]


@pytest.mark.parametrize("runs", [3, 5, 25])
def test_the_interval_covers_the_truth_even_for_three_runs(runs):
    """A fit per architecture rests on 3 pre-training sizes: its 95% interval must hold 95% of the time there too (a
    bootstrap of 3 runs covered the truth in 64% of such fits)."""
    rng = np.random.default_rng(runs)
    fits = [loglog_fit(*_loglinear(rng, runs, noise=0.1)) for _ in range(400)]
    share = np.mean([f.slope_ci[0] <= 0.7 <= f.slope_ci[1] for f in fits])
    assert 0.92 <= share <= 0.98, share
    widths = [f.slope_ci[1] - f.slope_ci[0] for f in fits]
    if runs == 25:
        assert 0.02 < np.median(widths) < 0.2  # an interval, not a point or everything
    # the plot's band holds the fitted line
    low, high = fits[0].band([10.0])
    assert low[0] < fits[0].predict([10.0])[0] < high[0]


def test_a_fit_needs_three_positive_points():
    with pytest.raises(UserError, match="fine-tuned vs pre-trained needs at least 3 runs with both errors, got 2"):
        loglog_fit([1, 2], [3, 4], what="fine-tuned vs pre-trained")
    with pytest.raises(UserError, match="errors must be positive and finite"):
        loglog_fit([1, 2, 3], [3, np.nan, 4])
    with pytest.raises(UserError, match="every run has the same x error"):
        loglog_fit([2, 2, 2], [3, 4, 5])


def test_cka_is_one_under_rotation_and_scale_and_near_zero_for_independent_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.5 * x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x, x + 7.0) == pytest.approx(1.0)  # centred: a shift changes nothing
    assert linear_cka(x, x @ rng.normal(size=(16, 16))) < 0.99  # a general linear map is not invariant
    independent = [linear_cka(rng.normal(size=(n, 16)), rng.normal(size=(n, 16))) for n in (100, 1000, 10000)]
    assert independent[0] < 0.3 and independent[2] < 0.01
    assert independent[0] > independent[1] > independent[2]  # the bias falls as ~ features / samples
    assert mean_cca(x, x @ rng.normal(size=(16, 16))) == pytest.approx(1.0)  # CCA: any invertible map
    assert mean_cca(rng.normal(size=(5000, 8)), rng.normal(size=(5000, 8))) < 0.01
    with pytest.raises(UserError, match="different atoms \\(500 vs 400\\)"):
        linear_cka(x, x[:400])


def _points():
    # (cost, error): A falls as cost^-0.5 from 100 at cost 100; B is 1.5x A's curve; C is one cheap, bad run
    a = [Point("A", c, 100 * (c / 100) ** -0.5, f"A{c}", c) for c in (100, 400, 1600, 6400)]
    b = [Point("B", c, 150 * (c / 100) ** -0.5, f"B{c}", c) for c in (50, 200, 800)]
    return a + b + [Point("C", 10, 500, "C10", 10)]


def test_pareto_front_of_a_hand_made_set():
    # B200 (106 at 200) loses to A100 (100 at 100), B800 (53 at 800) to A400 (50 at 400); the rest is the front
    assert [p.label for p in pareto_front(_points())] == ["C10", "B50", "A100", "A400", "A1600", "A6400"]


def test_the_planner_interpolates_and_flags_extrapolation():
    points = _points()
    (inside,) = plan(points, target_error=70.0)  # A reaches 70 at cost 100 / 0.49 = 204, inside A's 100-6400
    assert inside.family == "A" and not inside.extrapolated and inside.cost == pytest.approx(100 / 0.49, rel=1e-6)
    (measured,) = plan(points, target_error=100.0)
    assert measured.measured and measured.label == "A100"
    (beyond,) = plan(points, target_error=10.0)  # A needs cost 10,000 for error 10: beyond its 6,400
    assert beyond.extrapolated and beyond.cost == pytest.approx(10000, rel=1e-6) and "beyond" in beyond.why
    (budget,) = plan(points, budget=3200.0)
    assert budget.family == "A" and not budget.extrapolated and budget.error == pytest.approx(100 / 32**0.5)
    supported, far = plan(points, budget=1e5)  # the best run, and what A's curve promises for the whole budget
    assert supported.label == "A6400" and supported.measured and not supported.extrapolated
    assert far.extrapolated and far.error == pytest.approx(100 / 1000**0.5)
    with pytest.raises(UserError, match="exactly one of a target error"):
        plan(points)
    with pytest.raises(UserError, match="no run reaches an error of 1, and no family has 3 label budgets"):
        plan([Point("C", 10, 500, "C10", 10)], target_error=1.0)
    seeds = [Point("D", 100 + k, 90 - k, f"D{k}", 100) for k in range(4)]  # one label count, four seeds
    with pytest.raises(UserError, match="no family has 3 label budgets"):
        plan(seeds, target_error=50.0)
