"""g2d.metrics against independent computations: scikit-learn where it has the metric, a direct loop over every
threshold where it does not; on random, tied, perfectly separated and degenerate score sets. Plus bad input,
bootstrap determinism, and the `g2d metrics` command."""
import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, roc_curve

from conftest import g2d_command
from g2d.metrics import (METRIC_COLUMNS, MetricsInputError, best_accuracy, bootstrap_metrics, equal_error_rate,
                         fisher_discriminant_ratio, fnmr_at_fmr, kfold_accuracy, threshold_at_fmr,
                         transferred_error_rates, verification_curve, verification_metrics)


def _score_sets():
    rng = np.random.default_rng(42)
    n = 400
    labels = rng.random(n) < 0.4
    random = np.where(labels, rng.normal(0.5, 0.2, n), rng.normal(0.1, 0.2, n))
    yield "random", random, labels
    yield "tied", np.round(random, 1), labels
    yield "separated", np.where(labels, 0.6 + rng.random(n) * 0.4, rng.random(n) * 0.5), labels
    yield "inverted", np.where(labels, rng.random(n) * 0.5, 0.6 + rng.random(n) * 0.4), labels
    yield "constant", np.full(n, 0.3), labels
    yield "two values", np.where(rng.random(n) < 0.5, 0.2, 0.7), labels
    small_labels = np.array([1, 0, 1, 0, 0], dtype=bool)
    yield "tiny", np.array([0.4, 0.4, 0.9, -0.2, 0.1]), small_labels
    many = 3000
    many_labels = np.r_[np.ones(many, bool), np.zeros(many, bool)]
    yield "lfw-sized", np.r_[rng.normal(0.6, 0.15, many), rng.normal(0.1, 0.15, many)].round(3), many_labels


SCORE_SETS = list(_score_sets())
IDS = [name for name, _, _ in SCORE_SETS]


def _loop_rates(scores, labels):
    "Direct computation: for every candidate threshold (distinct scores, and above all) the FMR and FNMR."
    genuine, impostor = scores[labels], scores[~labels]
    candidates = sorted(set(scores.tolist()), reverse=True)
    rows = [(np.inf, 0.0, 1.0)]
    for t in candidates:
        rows.append((t, float(np.mean(impostor >= t)), float(np.mean(genuine < t))))
    return rows


@pytest.mark.parametrize("name,scores,labels", SCORE_SETS, ids=IDS)
def test_curve_matches_sklearn_roc(name, scores, labels):
    curve = verification_curve(scores, labels)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(curve.fmr, fpr) and np.allclose(curve.fnmr, 1 - tpr)
    assert np.array_equal(curve.thresholds[1:], thresholds[1:])


@pytest.mark.parametrize("name,scores,labels", SCORE_SETS, ids=IDS)
def test_accuracy_is_the_best_over_all_thresholds(name, scores, labels):
    best_by_loop = max(accuracy_score(labels, scores >= t) for t, _, _ in _loop_rates(scores, labels))
    acc, threshold = best_accuracy(scores, labels)
    assert acc == pytest.approx(best_by_loop)
    assert accuracy_score(labels, scores >= threshold) == pytest.approx(acc)


def _eer_by_loop(rates):
    "Walk the segments between consecutive operating points; EER where FNMR - FMR crosses zero."
    for (_, fmr0, fnmr0), (_, fmr1, fnmr1) in zip(rates, rates[1:]):
        g0, g1 = fnmr0 - fmr0, fnmr1 - fmr1
        if g0 >= 0 >= g1 and g0 != g1:
            # point on the segment where FNMR == FMR
            fraction = g0 / (g0 - g1)
            return fmr0 + fraction * (fmr1 - fmr0)
        if g0 == 0:
            return fmr0
    raise AssertionError("no crossing")


@pytest.mark.parametrize("name,scores,labels", SCORE_SETS, ids=IDS)
def test_eer_by_loop_and_bounds(name, scores, labels):
    rates = _loop_rates(scores, labels)
    eer = equal_error_rate(scores, labels)
    assert eer == pytest.approx(_eer_by_loop(rates))
    # no operating point does better than the EER on its worse error rate
    assert min(max(f, n) for _, f, n in rates) >= eer - 1e-12
    assert 0 <= eer <= 1


def test_eer_special_cases():
    separated = [n for n, _, _ in SCORE_SETS].index("separated")
    _, scores, labels = SCORE_SETS[separated]
    assert equal_error_rate(scores, labels) == 0.0
    assert equal_error_rate(-scores, labels) == 1.0
    assert equal_error_rate(np.zeros(10), np.arange(10) % 2) == 0.5


@pytest.mark.parametrize("name,scores,labels", SCORE_SETS, ids=IDS)
@pytest.mark.parametrize("target", [0.01, 0.001, 0.1, 0.0, 1.0])
def test_fnmr_at_fmr_is_the_lowest_fnmr_with_bounded_fmr(name, scores, labels, target):
    rates = _loop_rates(scores, labels)
    allowed = [(t, f, n) for t, f, n in rates if f <= target]
    lowest_fnmr = min(n for _, _, n in allowed)
    smallest_threshold = min(t for t, _, _ in allowed)
    assert fnmr_at_fmr(scores, labels, target) == pytest.approx(lowest_fnmr)
    threshold = threshold_at_fmr(scores, labels, target)
    if np.isfinite(smallest_threshold):
        assert threshold == smallest_threshold
    else:  # nothing but the top sentinel qualifies: a finite value above every score
        assert threshold > scores.max()
    assert np.mean(scores[~labels] >= threshold) <= target


@pytest.mark.parametrize("name,scores,labels", SCORE_SETS, ids=IDS)
def test_fdr_by_direct_formula(name, scores, labels):
    genuine, impostor = scores[labels], scores[~labels]
    numerator = (genuine.mean() - impostor.mean()) ** 2
    # a constant class has no variance (np.var of [0.7] * 3 is 1e-32, the mean's rounding): FDR is then infinite
    denominator = sum(np.var(v) if np.ptp(v) > 0 else 0.0 for v in (genuine, impostor))
    fdr = fisher_discriminant_ratio(scores, labels)
    if denominator > 0:
        assert fdr == pytest.approx(numerator / denominator)
    else:
        assert fdr == (0.0 if numerator == 0 else np.inf)


@pytest.mark.parametrize("name,scores,labels", SCORE_SETS, ids=IDS)
def test_full_report_agrees_with_single_metrics(name, scores, labels):
    rng = np.random.default_rng(7)
    reference_labels = rng.random(500) < 0.5
    reference = np.where(reference_labels, rng.normal(0.7, 0.1, 500), rng.normal(0.0, 0.2, 500))
    report = verification_metrics(scores, labels, reference, reference_labels)
    assert list(report)[:11] == list(METRIC_COLUMNS)
    assert report["ACC"] == pytest.approx(best_accuracy(scores, labels)[0])
    assert report["EER"] == pytest.approx(equal_error_rate(scores, labels))
    assert report["FMR1000"] == pytest.approx(fnmr_at_fmr(scores, labels, 0.001))
    for group, target in (("FMR100", 0.01), ("FMR1000", 0.001)):
        transfer = transferred_error_rates(scores, labels, reference, reference_labels, target)
        t = threshold_at_fmr(reference, reference_labels, target)
        assert report[f"{group}_Th"] == transfer["threshold"] == t
        # direct: apply the reference threshold to the evaluated scores
        assert report[f"{group}_Th_FMR"] == pytest.approx(np.mean(scores[~labels] >= t))
        assert report[f"{group}_Th_FNMR"] == pytest.approx(np.mean(scores[labels] < t))
        assert report[f"{group}_Th_AVG"] == pytest.approx((report[f"{group}_Th_FMR"] + report[f"{group}_Th_FNMR"]) / 2)


def test_self_reference_keeps_fmr_under_target():
    _, scores, labels = SCORE_SETS[0]
    report = verification_metrics(scores, labels, scores, labels)
    assert report["FMR100_Th_FMR"] <= 0.01 and report["FMR1000_Th_FMR"] <= 0.001
    assert report["FMR100_Th_FNMR"] == pytest.approx(report["FMR100"])


@pytest.mark.parametrize("scores,labels,message", [
    ([0.1, np.nan, 0.3], [1, 0, 1], "NaN or infinite"),
    ([0.1, -np.inf, 0.3], [1, 0, 1], "NaN or infinite"),
    ([0.1, 0.2], [1, 1], "no impostor"),
    ([0.1, 0.2], [0, 0], "no genuine"),
    ([0.1, 0.2, 0.3], [1, 0], "differ in length"),
    ([0.1, 0.2], [1, -1], "labels must be"),
    ([[0.1, 0.2]], [[1, 0]], "must be 1-D"),
])
def test_bad_input_is_a_clear_error(scores, labels, message):
    for metric in (verification_metrics, equal_error_rate, best_accuracy, fisher_discriminant_ratio):
        with pytest.raises(MetricsInputError, match=message):
            metric(scores, labels)
    with pytest.raises(ValueError):  # also a ValueError, as in scikit-learn
        verification_metrics(scores, labels)


def test_bad_reference_and_target_are_errors():
    with pytest.raises(MetricsInputError, match="NaN"):
        verification_metrics([0.1, 0.9], [0, 1], [0.1, np.nan], [0, 1])
    with pytest.raises(MetricsInputError, match="both"):
        verification_metrics([0.1, 0.9], [0, 1], [0.1, 0.2])
    with pytest.raises(MetricsInputError, match="target FMR"):
        fnmr_at_fmr([0.1, 0.9], [0, 1], 1.5)


def test_kfold_accuracy_by_loop():
    _, scores, labels = SCORE_SETS[-1]
    folds = np.tile(np.repeat(np.arange(10), 300), 2)
    result = kfold_accuracy(scores, labels, folds)
    for k, fold in enumerate(range(10)):
        train, test = folds != fold, folds == fold
        best = max(np.mean((scores[train] >= t) == labels[train]) for t in np.unique(scores[train]))
        threshold = result["thresholds"][k]
        assert accuracy_score(labels[train], scores[train] >= threshold) == pytest.approx(best)
        assert result["fold_accuracies"][k] == pytest.approx(accuracy_score(labels[test], scores[test] >= threshold))
    assert result["mean"] == pytest.approx(np.mean(result["fold_accuracies"]))
    assert result["std"] == pytest.approx(np.std(result["fold_accuracies"], ddof=1))
    with pytest.raises(MetricsInputError, match="equal consecutive folds"):
        kfold_accuracy(scores[:-1], labels[:-1])


def test_bootstrap_contains_point_estimate_and_is_deterministic():
    _, scores, labels = SCORE_SETS[-1]
    rng = np.random.default_rng(0)
    reference_labels = np.r_[np.ones(3000, bool), np.zeros(3000, bool)]
    reference = np.r_[rng.normal(0.7, 0.12, 3000), rng.normal(0.1, 0.15, 3000)]
    first = bootstrap_metrics(scores, labels, reference, reference_labels, n_resamples=100, seed=5)
    again = bootstrap_metrics(scores, labels, reference, reference_labels, n_resamples=100, seed=5)
    other = bootstrap_metrics(scores, labels, reference, reference_labels, n_resamples=100, seed=6)
    assert first == again and first != other
    for name in METRIC_COLUMNS:
        interval = first[name]
        assert interval["low"] <= interval["value"] <= interval["high"], (name, interval)


def run_g2d(*args):
    return subprocess.run(g2d_command() + list(args), capture_output=True, text=True, timeout=120)


def _write_scores(path, scores, labels):
    pd.DataFrame({"score": scores, "label": labels.astype(int)}).to_csv(path, index=False)
    return str(path)


def test_cli_json_matches_the_library(tmp_path):
    _, scores, labels = SCORE_SETS[0]
    _, reference, reference_labels = SCORE_SETS[-1]
    scores_csv = _write_scores(tmp_path / "scores.csv", scores, labels)
    reference_csv = _write_scores(tmp_path / "ref.csv", reference, reference_labels)
    done = run_g2d("metrics", scores_csv, "--reference", reference_csv, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    expected = verification_metrics(scores, labels, reference, reference_labels)
    assert list(printed) == list(expected)
    for key, value in expected.items():
        assert printed[key] == pytest.approx(value)
    assert all(0 <= printed[k] <= 1 for k in METRIC_COLUMNS if k != "FDR")


def test_cli_human_output_and_bootstrap(tmp_path):
    _, scores, labels = SCORE_SETS[0]
    scores_csv = _write_scores(tmp_path / "scores.csv", scores, labels)
    done = run_g2d("metrics", scores_csv)
    assert done.returncode == 0, done.stderr
    assert "ACC" in done.stdout and "needs --reference" in done.stdout
    done = run_g2d("metrics", scores_csv, "--bootstrap", "20", "--json")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["bootstrap"]) == set(METRIC_COLUMNS)


@pytest.mark.parametrize("content,message", [
    ("score,label\n0.1,1\nnan,0\n", "NaN or infinite"),
    ("score,label\n0.1,1\n0.2,1\n", "no impostor"),
    ("score,lab\n0.1,1\n0.2,0\n", "lacks column"),
])
def test_cli_bad_input_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    done = run_g2d("metrics", str(path))
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_cli_missing_file(tmp_path):
    done = run_g2d("metrics", str(tmp_path / "nowhere.csv"))
    assert done.returncode == 1 and "no scores file" in done.stderr
