"""The statistics of tracker compare on fixed data: published values, and direct scipy / statsmodels calls."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from tracker.analysis import stats

# Student's sleep data (Cushny & Peebles 1905, R's `sleep`): extra hours of sleep of the same 10
# patients under drug 1 and drug 2.
DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_summary_of_the_sleep_data_matches_r() -> None:
    # R: mean(sleep$extra[1:10]) 0.75, sd 1.789010; group 2: 2.33, sd 2.002249
    s = stats.summary([DRUG1, DRUG2])
    assert s["n"] == 10
    assert s["mean"] == pytest.approx([0.75, 2.33])
    assert s["std"] == pytest.approx([1.789010, 2.002249], abs=1e-6)
    assert s["median"] == pytest.approx([0.35, 1.75])
    assert s["min"].tolist() == [-1.6, -0.1] and s["max"].tolist() == [3.7, 5.5]
    assert math.isnan(stats.summary([3.0])["std"])  # one seed: no spread to speak of


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx(3.0)  # 1 and 100 cut off
    assert stats.iqm(DRUG1) == pytest.approx(sps.trim_mean(DRUG1, 0.25))


def test_paired_t_test_matches_student_sleep_data() -> None:
    # R: t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9, p-value = 0.002833
    p_t, p_w = stats.paired_tests(DRUG1, DRUG2)
    assert float(p_t) == pytest.approx(0.002833, abs=5e-7)
    assert float(p_w) == pytest.approx(sps.wilcoxon(np.subtract(DRUG2, DRUG1)).pvalue)
    # d_z = t / sqrt(n) = 4.0621 / sqrt(10)
    assert float(stats.cohens_dz(DRUG1, DRUG2)) == pytest.approx(4.0621 / math.sqrt(10), abs=1e-4)


def test_welch_test_matches_r_and_mann_whitney_matches_scipy() -> None:
    # R: t.test(extra ~ group, data = sleep): Welch, t = -1.8608, df = 17.776, p-value = 0.07939
    p_t, p_u = stats.unpaired_tests(DRUG1, DRUG2)
    assert float(p_t) == pytest.approx(0.07939, abs=5e-6)
    assert float(p_u) == pytest.approx(sps.mannwhitneyu(DRUG2, DRUG1).pvalue)


def test_tests_are_vectorised_row_by_row() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(4, 6)), rng.normal(0.5, size=(4, 6))
    p_t, p_w = stats.paired_tests(a, b)
    q_t, q_u = stats.unpaired_tests(a, b)
    for i in range(4):
        assert p_t[i] == pytest.approx(sps.ttest_rel(b[i], a[i]).pvalue)
        assert p_w[i] == pytest.approx(sps.wilcoxon(b[i] - a[i]).pvalue)
        assert q_t[i] == pytest.approx(sps.ttest_ind(b[i], a[i], equal_var=False).pvalue)
        assert q_u[i] == pytest.approx(sps.mannwhitneyu(b[i], a[i]).pvalue)


def test_constant_differences_give_no_p_value_and_no_warning() -> None:
    p_t, p_w = stats.paired_tests([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])  # every difference is exactly 1
    assert math.isnan(p_t) and math.isnan(p_w)
    assert math.isnan(stats.cohens_dz([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]))


def test_hedges_g_by_hand() -> None:
    # means 3 and 5, both variances 2.5: d = 2 / sqrt(2.5) = 1.264911; J = 1 - 3 / (4 * 10 - 9) = 28 / 31
    g = stats.hedges_g([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
    assert float(g) == pytest.approx(2 / math.sqrt(2.5) * 28 / 31)
    assert stats.effect_label(float(g)) == "large"
    assert [stats.effect_label(d) for d in (0.1, -0.3, 0.6, None)] == ["negligible", "small", "medium", "unknown"]


def test_holm_on_a_known_list() -> None:
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    pvalues = [0.2, 0.001, 0.04, 0.5, 0.012]
    assert stats.holm(pvalues) == pytest.approx(list(multipletests(pvalues, method="holm")[1]))
    assert stats.holm([]) == []


def test_holm_is_statsmodels_holm_on_random_p_values() -> None:
    # numpy's few lines instead of importing statsmodels (and pandas) at run time: the same numbers
    rng = np.random.default_rng(11)
    for size in (1, 2, 7, 500, 10_000):
        pvalues = rng.uniform(0, 1, size) ** 3
        pvalues[: size // 4] = pvalues[0]  # ties
        assert stats.holm(pvalues.tolist()) == multipletests(pvalues, method="holm")[1].tolist()


def test_power_is_statsmodels_ttest_power() -> None:
    effects = np.array([0.05, 0.2, 0.5, 0.8, 1.3, 4.0])
    for n in (2, 3, 10, 64, 1000):
        np.testing.assert_array_equal(stats.t_power(effects, n, paired=True), TTestPower().power(effects, n, 0.05))
        np.testing.assert_array_equal(stats.t_power(effects, n, paired=False),
                                      TTestIndPower().power(effects, n, 0.05))


def test_needed_seeds_match_cohens_tables_and_solve_power() -> None:
    # Cohen (1988), G*Power: two groups, power 0.8, alpha 0.05 two-sided: d = 0.8 -> 26, d = 0.5 -> 64 per group
    assert stats.needed_seeds(0.8, paired=False) == 26
    assert stats.needed_seeds(0.5, paired=False) == 64
    assert stats.needed_seeds(-0.2, paired=False) == 394  # Cohen rounds to 393; G*Power (exact) says 394
    for d in (0.3, 0.9, 1.7):
        assert stats.needed_seeds(d, paired=True) == math.ceil(TTestPower().solve_power(d, power=0.8, alpha=0.05))
        assert stats.needed_seeds(d, paired=False) == math.ceil(
            TTestIndPower().solve_power(d, power=0.8, alpha=0.05))
    assert stats.needed_seeds(np.array([0.5, 0.0, np.nan]), paired=True).tolist() == [34, 0, 0]
    assert stats.needed_seeds(1e-4, paired=True) == stats.MAX_SEEDS + 1


@pytest.mark.parametrize("paired", [True, False])
def test_needed_seeds_of_many_effects_are_each_effects_own(paired: bool) -> None:
    # a huge effect (2 seeds suffice) beside small ones: its finished search must not make the
    # others stop early (it once did: 0.3 paired gave 71 instead of 90, 50 gave 1 seed)
    effects = [50.0, 6.4, 0.3, 0.8, 1e-3]
    alone = [stats.needed_seeds(d, paired=paired) for d in effects]
    assert stats.needed_seeds(np.array(effects), paired=paired).tolist() == alone
    model = TTestPower() if paired else TTestIndPower()
    for d, n in zip(effects[1:4], alone[1:4], strict=True):  # the smallest n whose power reaches 0.8
        assert model.power(d, n, 0.05) >= 0.8
        assert n == 2 or model.power(d, n - 1, 0.05) < 0.8  # 1 seed: no test
    assert alone[0] == 2 and alone[-1] == stats.MAX_SEEDS + 1


def test_probability_of_improvement_is_u_over_nm() -> None:
    # 1 beats 0; 2 beats 0 and ties 2; 3 beats 0 and 2: 4.5 wins of 9
    assert stats.prob_improvement([1, 2, 3], [0, 2, 4]) == pytest.approx(0.5)
    x, y = [0.7, 0.9, 0.8, 0.95], [0.6, 0.85, 0.5]
    assert stats.prob_improvement(x, y) == pytest.approx(sps.mannwhitneyu(x, y).statistic / 12)
    assert stats.prob_improvement([2, 3], [0, 1]) == 1.0


def test_bootstrap_is_scipys_seeded_percentile_interval() -> None:
    diff = np.subtract(DRUG2, DRUG1)
    low, high = stats.bootstrap_ci([diff], "mean")
    direct = sps.bootstrap((diff,), np.mean, method="percentile", rng=np.random.default_rng(stats.SEED))
    assert (float(low), float(high)) == pytest.approx((direct.confidence_interval.low,
                                                       direct.confidence_interval.high))
    assert low < diff.mean() < high
    assert stats.bootstrap_ci([diff], "mean") == (low, high)  # reproducible
    # paired difference of medians against scipy's own paired bootstrap
    low, high = stats.bootstrap_ci([DRUG1, DRUG2], "median", paired=True)
    direct = sps.bootstrap((DRUG1, DRUG2), lambda a, b, axis=-1: np.median(b, axis=axis) - np.median(a, axis=axis),
                           paired=True, method="percentile", rng=np.random.default_rng(stats.SEED))
    assert (float(low), float(high)) == pytest.approx((direct.confidence_interval.low,
                                                       direct.confidence_interval.high))


@pytest.mark.parametrize("paired", [True, False])
def test_the_fast_mean_interval_is_scipys(paired: bool) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 8)), rng.normal(0.3, size=(6, 8 if paired else 5))
    low, high = stats.bootstrap_ci([a, b], "mean", paired=paired, n_resamples=3000)
    direct = sps.bootstrap((a, b), lambda x, y, axis=-1: np.mean(y, axis=axis) - np.mean(x, axis=axis),
                           paired=paired, axis=-1, n_resamples=3000, method="percentile",
                           rng=np.random.default_rng(stats.SEED))
    assert low == pytest.approx(direct.confidence_interval.low)
    assert high == pytest.approx(direct.confidence_interval.high)
    low, high = stats.bootstrap_ci([b], "mean", n_resamples=3000)
    direct = sps.bootstrap((b,), np.mean, axis=-1, n_resamples=3000, method="percentile",
                           rng=np.random.default_rng(stats.SEED))
    assert (low, high) == (pytest.approx(direct.confidence_interval.low),
                           pytest.approx(direct.confidence_interval.high))


def test_percentiles_are_numpys_quantiles() -> None:
    rng = np.random.default_rng(2)
    for rows, resamples in ((1, 2), (3, 9), (500, 1000), (20, 9999)):
        dist = rng.normal(size=(rows, resamples))
        dist[0, 0] = dist[0, 1]  # a tie
        if rows > 2:
            dist[2, 5] = np.nan
        want = np.quantile(dist, [0.025, 0.975], axis=-1)
        got = stats._quantiles(dist.copy(), (0.025, 0.975))
        np.testing.assert_array_equal(got, want)  # bit for bit, NaN rows NaN


def test_bootstrap_of_many_rows_equals_row_by_row() -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(5, 7))
    low, high = stats.bootstrap_ci([data], "iqm", n_resamples=2000)
    for i in range(5):
        one = stats.bootstrap_ci([data[i]], "iqm", n_resamples=2000)
        assert (low[i], high[i]) == pytest.approx(one)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([[1.0]], "mean"))  # one seed: no interval


def test_resamples_bound_the_work() -> None:
    assert stats.resamples(50) == 9999
    assert stats.resamples(100_000) == 1000
    assert stats.resamples(5_000) == 2000


def test_no_heavy_import_until_a_test_runs_and_never_statsmodels() -> None:
    # scipy.stats costs about a second to import, statsmodels (with pandas) about half of one
    code = ("import sys\n"
            "from tracker.analysis import compare, stats\n"
            "heavy = ('scipy.stats', 'statsmodels', 'pandas')\n"
            "print([m for m in heavy if m in sys.modules])\n"
            "stats.bootstrap_ci([[1.0, 2.0, 4.0]], 'mean'), stats.summary([[1.0, 2.0, 4.0]])\n"
            "stats.holm([0.01, 0.2]), stats.needed_seeds([0.5, 1.0], paired=True)\n"
            "print([m for m in heavy if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


@pytest.mark.parametrize("decimals", [10, 6, 2])  # 10: no ties (computed here); 2: ties (scipy runs)
def test_the_tests_equal_scipys_to_the_last_bit(decimals: int) -> None:
    rng = np.random.default_rng(decimals)
    big, size = (30, 14) if decimals > 2 else (3, 9)  # ties: scipy's permutation test is slow
    for _ in range(40 if decimals > 2 else 10):
        rows, n, m = int(rng.integers(1, big)), int(rng.integers(2, size)), int(rng.integers(2, 14))
        a = np.round(rng.normal(0.8, 0.02, (rows, n)), decimals)
        b = np.round(rng.normal(0.81, 0.02, (rows, n)), decimals)
        c = np.round(rng.normal(0.81, 0.02, (rows, m)), decimals)
        p_t, p_w = stats.paired_tests(a, b)
        q_t, q_u = stats.unpaired_tests(a, c)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paired = stats._constant(b - a, a, b)
            unpaired = stats._constant(a, a, c) & stats._constant(c, a, c)
            expected = [np.where(paired, np.nan, sps.ttest_rel(b, a, axis=-1).pvalue),
                        np.where(paired, np.nan, stats._quiet(sps.wilcoxon, b - a)),
                        np.where(unpaired, np.nan, sps.ttest_ind(c, a, equal_var=False, axis=-1).pvalue),
                        np.where(unpaired, np.nan, sps.mannwhitneyu(c, a, axis=-1).pvalue)]
        for got, want in zip((p_t, p_w, q_t, q_u), expected, strict=True):
            assert np.array_equal(got, want, equal_nan=True), (got, want)


def test_a_comparison_without_ties_does_not_import_scipy_stats() -> None:
    code = ("import sys, numpy as np\nfrom tracker.analysis import stats\n"
            "rng = np.random.default_rng(0)\na, b = rng.normal(size=(2, 50, 10))\n"
            "stats.paired_tests(a, b); stats.unpaired_tests(a, b); stats.bootstrap_ci([a, b], paired=True)\n"
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # 0.6-1.0 s saved
