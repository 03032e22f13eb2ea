"""Speed of the verification metrics: a full report (all eleven metrics, no bootstrap) over 1,000,000 pairs, side by
side with scikit-learn's roc_curve on the same scores. Target: a full report in under 2 s."""
import time

import numpy as np
from sklearn.metrics import roc_curve

from g2d.metrics import bootstrap_metrics, kfold_accuracy, verification_curve, verification_metrics


def _scores(n: int, seed: int, genuine_mean: float):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    scores = np.where(labels, rng.normal(genuine_mean, 0.15, n), rng.normal(0.1, 0.15, n))
    return scores, labels


def _best_of(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main(n_pairs: int = 1_000_000) -> list[tuple[str, float]]:
    scores, labels = _scores(n_pairs, 0, 0.5)
    reference, reference_labels = _scores(n_pairs, 1, 0.6)
    tied = np.round(scores, 3)
    small, small_labels = _scores(6000, 2, 0.5)
    rows = [
        (f"sklearn roc_curve, {n_pairs:,} pairs", _best_of(lambda: roc_curve(labels, scores, drop_intermediate=False))),
        (f"verification_curve, {n_pairs:,} pairs", _best_of(lambda: verification_curve(scores, labels))),
        (f"verification_metrics, {n_pairs:,} pairs", _best_of(lambda: verification_metrics(scores, labels))),
        (f"verification_metrics + {n_pairs:,} reference pairs",
         _best_of(lambda: verification_metrics(scores, labels, reference, reference_labels))),
        (f"verification_metrics, {n_pairs:,} pairs, scores rounded to 1e-3 (ties)",
         _best_of(lambda: verification_metrics(tied, labels))),
        ("kfold_accuracy, 6,000 pairs, 10 folds", _best_of(lambda: kfold_accuracy(small, small_labels))),
        ("bootstrap_metrics, 6,000 pairs + reference, 1,000 resamples",
         _best_of(lambda: bootstrap_metrics(small, small_labels, small, small_labels, n_resamples=1000), repeats=1)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.3f}")
    full = rows[3][1]
    print(f"full report with reference over {n_pairs:,} pairs: {full:.3f} s ({'meets' if full < 2 else 'MISSES'} the 2 s target)")
    return rows


if __name__ == "__main__":
    main()
