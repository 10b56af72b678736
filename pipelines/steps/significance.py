"""Tests with a known false-alarm rate for the monitoring checks: a batch is compared with the baseline as
two samples (the baseline is a sample too, so a million-row batch is not held to a precision the baseline
never had), and the per-test level is corrected for the number of tests so the whole check keeps its
significance.

Imports only numpy and scipy.special (present in the SageMaker containers, quick to import).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, kolmogi, kolmogorov, ndtri

# Tail terms further than this many standard deviations from the mean add less than e^-1000: skipped.
_TAIL_SDS = 45.0


def per_test_level(significance: float, tests: int) -> float:
    """Šidák: the level each of `tests` independent tests must use so that any of them fires on a clean
    batch with probability `significance`. Conservative (never above it) for dependent tests too."""
    if tests <= 0:
        return significance
    return -math.expm1(math.log1p(-significance) / tests)


def _log_choose(n, k):
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def excess_p_value(batch_hits: int, batch_n: int, baseline_hits: int, baseline_n: int) -> float:
    """One-sided Fisher exact test: P(the batch holds at least `batch_hits` of the hits) when batch and
    baseline rows are exchangeable, given the hits of both together (hypergeometric upper tail).

    A "hit" is a missing value (completeness), a value outside the baseline's domain, a negative value.
    """
    n, m = int(batch_n), int(baseline_n)
    k = int(batch_hits)
    hits = k + int(baseline_hits)
    total = n + m
    if n == 0 or k == 0 or hits == 0:
        return 1.0
    low, high = max(k, hits - m), min(hits, n)
    if low > high:
        return 0.0
    mean = n * hits / total
    variance = n * (hits / total) * (1 - hits / total) * (m / max(total - 1, 1))
    spread = _TAIL_SDS * math.sqrt(variance) + 50
    # Only terms within `spread` of the mean (or the first one, when the tail starts beyond) matter.
    low = max(low, math.floor(mean - spread))
    high = max(low, min(high, math.ceil(mean + spread)))
    x = np.arange(low, high + 1, dtype=np.float64)
    log_terms = _log_choose(hits, x) + _log_choose(total - hits, n - x) - _log_choose(total, n)
    peak = float(log_terms.max())
    return float(min(1.0, math.exp(peak) * np.exp(log_terms - peak).sum()))


def excess_bound(level: float, batch_n: int, baseline_hits: int, baseline_n: int) -> int:
    """The largest number of hits in a batch of `batch_n` rows that the test at `level` still accepts."""
    lo, hi = 0, int(batch_n)
    if excess_p_value(hi, batch_n, baseline_hits, baseline_n) >= level:
        return hi
    # p is decreasing in the batch's hits: the last accepted count, by bisection (~20 tests for 1M rows).
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if excess_p_value(mid, batch_n, baseline_hits, baseline_n) >= level:
            lo = mid
        else:
            hi = mid
    return lo


def effective_size(batch_n: int, baseline_n: int) -> float:
    return batch_n * baseline_n / (batch_n + baseline_n) if batch_n and baseline_n else 0.0


def distance_p_value(distance: float, batch_n: int, baseline_n: int) -> float:
    """Two-sample Kolmogorov-Smirnov p-value of an L-infinity CDF distance (asymptotic distribution).

    On bucketed or tied values the distance can only be smaller than on the raw values, and the
    asymptotic tail is above the exact one, so the test errs towards not alarming.
    """
    size = effective_size(batch_n, baseline_n)
    if size == 0:
        return 1.0
    return float(kolmogorov(distance * math.sqrt(size)))


def distance_bound(level: float, batch_n: int, baseline_n: int) -> float:
    """The largest CDF distance the two-sample KS test at `level` accepts for these sample sizes."""
    size = effective_size(batch_n, baseline_n)
    if size == 0:
        return 1.0
    return float(min(1.0, kolmogi(level) / math.sqrt(size)))


def cdf_distance(baseline_counts, current_counts) -> float:
    """L-infinity distance between two distributions' CDFs over the same buckets (Model Monitor's 'Simple')."""
    base = np.asarray(baseline_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if base.sum() == 0 or cur.sum() == 0:
        return 0.0
    return float(np.max(np.abs(np.cumsum(base) / base.sum() - np.cumsum(cur) / cur.sum())))


def shortfall_bound(baseline: float, tolerance: float, level: float, se_batch: float, se_baseline: float) -> float:
    """The lowest value of a metric a batch may show before it is significantly below `baseline - tolerance`:
    a one-sided z-test at `level` whose error combines the batch's and the baseline's sampling errors."""
    return baseline - tolerance - float(ndtri(1 - level)) * math.sqrt(se_batch**2 + se_baseline**2)


def metric_standard_errors(tp: int, fp: int, fn: int, tn: int, auc: float) -> dict:
    """Sampling standard errors of accuracy, precision, recall and F1 (delta method on the confusion
    counts) and of AUC (Hanley and McNeil, 1982) for a labelled sample with these counts."""

    def proportion(p, n):
        return math.sqrt(p * (1 - p) / n) if n else 0.0

    n = tp + fp + fn + tn
    accuracy = (tp + tn) / n if n else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    d = 2 * tp + fp + fn
    # F1 = 2tp / (2tp + fp + fn) is scale-free, so its delta-method variance is sum (dF1/dcount)^2 * count.
    f1_var = ((2 * (fp + fn) / d**2) ** 2 * tp + (2 * tp / d**2) ** 2 * (fp + fn)) if d else 0.0
    positives, negatives = tp + fn, tn + fp
    if positives and negatives:
        q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
        auc_var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
            positives * negatives
        )
    else:
        auc_var = 0.0
    return {
        "accuracy": proportion(accuracy, n),
        "precision": proportion(precision, tp + fp),
        "recall": proportion(recall, tp + fn),
        "f1": math.sqrt(max(f1_var, 0.0)),
        "auc": math.sqrt(max(auc_var, 0.0)),
    }
