"""Statistics over seeds for ``tracker compare``: small pure functions over samples of floats.

Every function takes one sample (a list of floats) or many samples of the same size at once
(a 2-D array, one sample per row; the statistic runs along the last axis), so that comparing
10,000 configurations costs a few vectorised calls rather than 10,000 Python loops. The tests
check them on published examples and against direct scipy / statsmodels calls.

scipy and numpy come with the ``analysis`` extra (``pip install 'seedtracker[analysis]'``); statsmodels
too, but only the tests use it (to check Holm and the power computation here against it):
importing it pulls in pandas, 0.3-0.8 s, more than the statistics of a comparison of 10,000
configurations. scipy.stats (0.6-1.0 s to import on a busy 2-core machine, a third of a comparison
of 100,000 trials) is imported only where its arithmetic is not repeated here: a bootstrap other
than the mean's, and the rank tests' cases with ties or zeros (or small unpaired samples). The
t-tests, Wilcoxon's exact test and Mann-Whitney's normal approximation are computed here with
scipy.special, by scipy.stats' own steps (same functions, same order: the same numbers; the tests
check it on many samples).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ALPHA = 0.05
POWER = 0.8
SEED = 0  # every bootstrap draws from this seed: the same data always gives the same intervals
MAX_SEEDS = 100_000  # the needed-seeds hint gives up beyond this


def iqm(values: Any, axis: int = -1) -> Any:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(values, 0.25)``,
    computed the same way: a partition, then the mean of the middle)."""
    x = np.asarray(values)
    n = x.shape[axis]
    cut = int(0.25 * n)
    middle = np.partition(x, (cut, n - cut - 1), axis)
    index = [slice(None)] * middle.ndim
    index[axis] = slice(cut, n - cut)
    return np.mean(middle[tuple(index)].astype(float, copy=False), axis=axis)


def statistic(name: str) -> Callable[..., Any]:
    """The function of a statistic (mean, median or iqm), taking ``(values, axis=...)``."""
    return {"mean": np.mean, "median": np.median, "iqm": iqm}[name]


def summary(values: Any) -> dict[str, Any]:
    """n, mean, std (ddof=1; NaN for n < 2), median, iqm, min, max of each sample (along the last axis)."""
    x = np.asarray(values, dtype=float)
    n = x.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.std(x, axis=-1, ddof=1) if n > 1 else np.full(x.shape[:-1], np.nan)
    return {"n": n, "mean": np.mean(x, axis=-1), "std": std, "median": np.median(x, axis=-1),
            "iqm": iqm(x), "min": np.min(x, axis=-1), "max": np.max(x, axis=-1)}


def resamples(trials: int) -> int:
    """Bootstrap resamples for a comparison over ``trials`` trials: 9,999 (scipy's default) up to
    1,000 trials, fewer beyond so that the work (trials x resamples) stays under 10 million, never
    fewer than 1,000. The intervals' Monte Carlo error stays well under their width."""
    return max(1000, min(9999, 10_000_000 // max(trials, 1)))


def bootstrap_ci(samples: Sequence[Any], stat: str = "mean", *, paired: bool = False,
                 n_resamples: int = 9999, confidence: float = 0.95) -> tuple[Any, Any]:
    """Percentile bootstrap interval of a statistic (``scipy.stats.bootstrap``, seeded: reproducible).

    One sample: the interval of ``stat`` of it. Two samples ``(a, b)``: of ``stat(b) - stat(a)``,
    resampling seeds jointly when ``paired`` (same length, same seed order), else each on its own.
    Each sample may be 2-D (many comparisons of the same size at once). Returns (low, high),
    NaN where a sample has fewer than 2 values or the data are constant.
    """
    fn = statistic(stat)
    data = [np.asarray(s, dtype=float) for s in samples]
    if min(d.shape[-1] for d in data) < 2:
        shape = np.broadcast_shapes(*(d.shape[:-1] for d in data))
        return np.full(shape, np.nan), np.full(shape, np.nan)
    if stat == "mean":
        return _mean_ci(data, paired, n_resamples, confidence)
    if len(data) == 1:
        def func(x: Any, axis: int = -1) -> Any:
            return fn(x, axis=axis)
    else:
        def func(a: Any, b: Any, axis: int = -1) -> Any:
            return fn(b, axis=axis) - fn(a, axis=axis)
    from scipy import stats as sps

    batch = max(1, 20_000_000 // max(1, sum(d.size for d in data)))  # bounds the memory of one batch
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")  # constant data: scipy warns and we return its NaN/equal bounds
        result = sps.bootstrap(tuple(data), func, n_resamples=n_resamples, batch=min(batch, n_resamples),
                               vectorized=True, paired=paired, axis=-1, confidence_level=confidence,
                               method="percentile", rng=np.random.default_rng(SEED))
    return result.confidence_interval.low, result.confidence_interval.high


def _counts(rng: np.random.Generator, n: int, n_resamples: int) -> Any:
    """How often each of n values is drawn in each resample: scipy's draw (``integers(0, n, (B, n))``)."""
    drawn = rng.integers(0, n, (n_resamples, n)) + (np.arange(n_resamples) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def _mean_ci(data: list[Any], paired: bool, n_resamples: int, confidence: float) -> tuple[Any, Any]:
    """:func:`bootstrap_ci` of the mean without materialising the resamples: the same draws as
    ``scipy.stats.bootstrap`` (one batch, same generator and seed), each resample's mean a product
    with its draw counts, then the same percentiles. Equal to scipy's interval up to rounding
    (tests/analysis/test_stats.py checks it); 100x faster for 10,000 configurations."""
    rng = np.random.default_rng(SEED)
    if len(data) == 1 or paired:  # paired: scipy resamples the index of the pairs, the same draw
        x = data[0] if len(data) == 1 else data[1] - data[0]
        n = x.shape[-1]
        dist = x @ _counts(rng, n, n_resamples).T
        dist /= n  # in place: 10,000 rows x 1,000 resamples
    else:
        a, b = data
        counts_a, counts_b = _counts(rng, a.shape[-1], n_resamples), _counts(rng, b.shape[-1], n_resamples)
        dist = b @ counts_b.T / b.shape[-1] - a @ counts_a.T / a.shape[-1]
    alpha = (1 - confidence) / 2
    low, high = _quantiles(dist, (alpha, 1 - alpha))
    return low, high


def _quantiles(dist: Any, qs: Sequence[float]) -> list[Any]:
    """``np.quantile(dist, qs, axis=-1)`` (linear interpolation; ``0 < q < 1``, at least 2 values per row),
    from the two order statistics each ``q`` needs, found by one single-kth partition per ``q`` in
    place along the (contiguous) rows. np.quantile moves the axis and partitions across rows, and a
    partition with several kth is 7x slower than one with one. Same arithmetic as numpy's, so the
    same numbers (tests/analysis/test_stats.py checks)."""
    n = dist.shape[-1]
    nan = np.isnan(dist).any(axis=-1)  # numpy's quantiles of a row with NaN are NaN
    out = []
    for q in qs:
        virtual = (n - 1) * np.float64(q)
        below = int(np.floor(virtual))
        if below < n // 2:  # the smaller side is scanned for the neighbour
            dist.partition(below + 1, axis=-1)
            a, c = np.max(dist[..., : below + 1], axis=-1), dist[..., below + 1]
        else:
            dist.partition(below, axis=-1)
            a, c = dist[..., below], np.min(dist[..., below + 1:], axis=-1)
        gamma = virtual - below
        diff = c - a
        value = c - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
        out.append(np.where(nan, np.nan, value))
    return out


def cohens_dz(a: Any, b: Any) -> Any:
    """Cohen's d_z of paired samples: mean(b - a) / std(b - a, ddof=1) (NaN when the differences
    are constant)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.std(d, axis=-1, ddof=1)
        return np.where(sd > 0, np.mean(d, axis=-1) / np.where(sd > 0, sd, 1), np.nan)


def hedges_g(a: Any, b: Any) -> Any:
    """Hedges' g of independent samples: (mean(b) - mean(a)) / pooled std, times the small-sample
    correction J = 1 - 3 / (4 (n_a + n_b) - 9) (Hedges & Olkin 1985, the approximation of J)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = x.shape[-1], y.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(((na - 1) * np.var(x, axis=-1, ddof=1) + (nb - 1) * np.var(y, axis=-1, ddof=1))
                         / (na + nb - 2))
        d = np.where(pooled > 0, (np.mean(y, axis=-1) - np.mean(x, axis=-1)) / np.where(pooled > 0, pooled, 1),
                     np.nan)
    return d * (1 - 3 / (4 * (na + nb) - 9))


def effect_label(d: float | None) -> str:
    """Cohen's words for a standardised effect: negligible (< 0.2), small, medium (>= 0.5), large (>= 0.8)."""
    if d is None or math.isnan(d):
        return "unknown"
    d = abs(d)
    return "negligible" if d < 0.2 else "small" if d < 0.5 else "medium" if d < 0.8 else "large"


def _quiet(test: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A scipy test's p-values, NaN where the test is undefined (constant data), without warnings."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        try:
            return np.asarray(test(*args, axis=-1, **kwargs).pvalue, dtype=float)
        except ValueError:  # e.g. wilcoxon of differences that are all zero
            shape = np.broadcast_shapes(*(np.shape(a)[:-1] for a in args))
            return np.full(shape, np.nan)


def _constant(x: Any, *scale: Any) -> Any:
    """Whether each sample of ``x`` is constant up to rounding error (1e-9 of the data's magnitude):
    differences of values logged with 6 decimals that differ only in their 16th digit do not vary."""
    size = np.max([np.max(np.abs(s), axis=-1) for s in scale], axis=0)
    return np.ptp(x, axis=-1) <= 1e-9 * np.maximum(size, 1e-300)


def paired_tests(a: Any, b: Any) -> tuple[Any, Any]:
    """p-values of the paired t-test and the Wilcoxon signed-rank test of b against a (two-sided);
    NaN where the differences do not vary (the tests assume they do). Equal to
    ``scipy.stats.ttest_rel(b, a)`` and ``scipy.stats.wilcoxon(b - a)`` over the same batch."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    constant = _constant(b - a, a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_t = _ttest_rel(a, b)
    return np.where(constant, np.nan, p_t), np.where(constant, np.nan, _wilcoxon(b - a))


def unpaired_tests(a: Any, b: Any) -> tuple[Any, Any]:
    """p-values of Welch's t-test and the Mann-Whitney U test of b against a (two-sided); NaN where
    neither sample varies. Equal to ``scipy.stats.ttest_ind(b, a, equal_var=False)`` and
    ``scipy.stats.mannwhitneyu(b, a)`` over the same batch."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    constant = _constant(a, a, b) & _constant(b, a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_t = _welch(a, b)
    return np.where(constant, np.nan, p_t), np.where(constant, np.nan, _mann_whitney(b, a))


def _var(x: Any, n: int) -> Any:
    """The sample variance (ddof=1) as scipy.stats computes it: the mean squared deviation, times n / (n - 1)."""
    deviation = x - np.mean(x, axis=-1, keepdims=True)
    return np.mean(deviation**2, axis=-1) * (n / (n - 1))


def _t_pvalue(t: Any, df: Any) -> Any:
    """Two-sided p-value of Student's t (scipy.stats' ``2 * stdtr(df, -|t|)``)."""
    from scipy import special

    return 2 * special.stdtr(df, -np.abs(t))


def _ttest_rel(a: Any, b: Any) -> Any:
    """``scipy.stats.ttest_rel(b, a).pvalue``: a one-sample t-test of b - a."""
    d = b - a
    n = d.shape[-1]
    return _t_pvalue(np.mean(d, axis=-1) / np.sqrt(_var(d, n) / n), n - 1)


def _welch(a: Any, b: Any) -> Any:
    """``scipy.stats.ttest_ind(b, a, equal_var=False).pvalue``."""
    n1, n2 = b.shape[-1], a.shape[-1]
    vn1, vn2 = _var(b, n1) / n1, _var(a, n2) / n2
    df = (vn1 + vn2) ** 2 / (vn1**2 / (n1 - 1) + vn2**2 / (n2 - 1))
    df = np.where(np.isnan(df), 1.0, df)
    return _t_pvalue((np.mean(b, axis=-1) - np.mean(a, axis=-1)) / np.sqrt(vn1 + vn2), df)


def _distinct(x: Any) -> bool:
    """Whether every row of ``x`` holds distinct values (no ties)."""
    ordered = np.sort(x, axis=-1)
    return bool(np.all(np.diff(ordered, axis=-1) != 0))


def _ranks(x: Any) -> Any:
    """Ranks 1..n along the last axis of rows without ties."""
    return np.argsort(np.argsort(x, axis=-1), axis=-1) + 1.0


def _wilcoxon(d: Any) -> Any:
    """``scipy.stats.wilcoxon(d).pvalue`` (two-sided, zeros dropped). scipy takes its exact null
    distribution when no row has a tie and the batch no zero (n <= 50), as computed here; otherwise
    (a permutation test or the normal approximation, chosen over the whole batch) scipy runs."""
    n = d.shape[-1]
    if n > 50 or np.any(d == 0) or not _distinct(np.abs(d)):
        from scipy import stats as sps

        return _quiet(sps.wilcoxon, d)
    r_plus = np.sum((d > 0) * _ranks(np.abs(d)), axis=-1)
    pmf = _wilcoxon_pmf(n)
    mean = n * (n + 1) / 4

    def cdf(k: int) -> float:
        return pmf[:k + 1].sum() if k <= mean else 1 - pmf[k + 1:].sum()

    def sf(k: int) -> float:
        return pmf[k:].sum() if k <= mean else 1 - pmf[:k].sum()

    p = [2 * min(sf(int(np.floor(r))), cdf(int(np.ceil(r)))) for r in np.ravel(r_plus)]
    return np.clip(np.reshape(np.array(p, dtype=float), np.shape(r_plus)), 0, 1)


def _wilcoxon_pmf(n: int) -> Any:
    """The null distribution of Wilcoxon's signed-rank sum over n values (scipy's recursion)."""
    c = np.ones(1, dtype=np.float64)
    for k in range(1, n + 1):
        prev = c
        c = np.zeros(k * (k + 1) // 2 + 1, dtype=np.float64)
        m = len(prev)
        c[:m] = prev * 0.5
        c[-m:] += prev * 0.5
    return c


def _mann_whitney(x: Any, y: Any) -> Any:
    """``scipy.stats.mannwhitneyu(x, y).pvalue`` (two-sided). scipy takes the normal approximation with
    continuity correction when both samples have more than 8 values, computed here when no row
    has a tie; otherwise (ties, or its exact distribution for small samples) scipy runs."""
    n1, n2 = x.shape[-1], y.shape[-1]
    xy = np.concatenate(np.broadcast_arrays(x, y) if x.shape == y.shape else
                        (x, np.broadcast_to(y, (*x.shape[:-1], n2))), axis=-1)
    if n1 <= 8 or n2 <= 8 or not _distinct(xy):
        from scipy import stats as sps

        return _quiet(sps.mannwhitneyu, x, y)
    from scipy import special

    u1 = np.sum(_ranks(xy)[..., :n1], axis=-1) - n1 * (n1 + 1) / 2
    u = np.maximum(u1, n1 * n2 - u1)
    n = n1 + n2
    tie_term = np.zeros(np.shape(u))
    s = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    return np.clip(special.ndtr(-((u - n1 * n2 / 2 - 0.5) / s)) * 2, 0.0, 1.0)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: the i-th smallest of m times (m - i), made non-decreasing, at most 1
    (what ``statsmodels.stats.multitest.multipletests(method="holm")`` computes, the same way)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    adjusted = np.minimum(np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)), 1.0)
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out.tolist()


def prob_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y): how often a value of x beats one of y, ties counting half (Mann-Whitney U / (n m),
    the "probability of improvement" of Agarwal et al. 2021)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    greater = (x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum()
    return float(greater / (len(x) * len(y)))


def t_power(effect: Any, n: Any, *, paired: bool, alpha: float = ALPHA) -> Any:
    """Power of a two-sided t-test at ``alpha`` to detect a standardised effect with ``n`` seeds per
    configuration (paired: d_z, df = n - 1; unpaired: equal groups, df = 2n - 2): the noncentral
    t's mass beyond the critical values, as statsmodels' ``TTestPower().power`` /
    ``TTestIndPower().power`` compute it (with scipy.special; statsmodels is not imported)."""
    from scipy import special

    n = np.asarray(n)
    if paired:
        df, nobs = n - 1, n
    else:
        df, nobs = n - 1 + n - 1, 1.0 / (1.0 / n + 1.0 / n)
    nc = effect * np.sqrt(nobs)
    upper, lower = -special.stdtrit(df, alpha / 2.0), special.stdtrit(df, alpha / 2.0)
    return (1 - special.nctdtr(df, nc, upper)) + special.nctdtr(df, nc, lower)


def needed_seeds(effect: Any, *, paired: bool, alpha: float = ALPHA, power: float = POWER) -> Any:
    """Seeds (per configuration) a two-sided t-test needs to detect a standardised effect of this
    size ``power`` of the time at ``alpha``: the smallest n where :func:`t_power` (statsmodels'
    ``TTestPower``, paired: d_z, or ``TTestIndPower``, unpaired: g, equal groups) reaches
    ``power``, i.e. ``ceil(solve_power(...))``. 0 where the effect is 0 or undefined;
    MAX_SEEDS + 1 beyond that."""
    from scipy import special

    d = np.abs(np.atleast_1d(np.asarray(effect, dtype=float)))
    ok = np.isfinite(d) & (d > 0)

    def reaches(n: Any) -> Any:
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore")
            got = np.asarray(t_power(np.where(ok, d, 1.0), n, paired=paired, alpha=alpha))
        return np.isnan(got) | (got >= power)  # scipy's noncentral t gives NaN only where power is ~1

    low = np.full(d.shape, 1, dtype=np.int64)  # power(low) < target (n = 1 is no test at all)
    # above: twice the normal approximation ((z_a/2 + z_power) / d)^2 (x 2 for two groups), plus 10
    z = special.ndtri(1 - alpha / 2) + special.ndtri(power)
    guess = 2 * (z / np.where(ok, d, 1.0)) ** 2 * (1 if paired else 2) + 10
    high = np.minimum(np.ceil(guess), MAX_SEEDS + 1).astype(np.int64)  # reaches it (or the cap)
    while np.any(searching := high - low > 1):
        mid = np.where(searching, (low + high) // 2, high)  # found ones: no test at n = 1 (df = 0)
        hit = reaches(mid)
        high = np.where(searching & hit, mid, high)
        low = np.where(searching & ~hit, mid, low)
    out = np.where(ok, high, 0)
    return out if np.ndim(effect) else int(out[0])
