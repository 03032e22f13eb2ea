"""`make reproduce`'s batch on the real experiment notebooks, smoke profile: it completes and writes a manifest."""
import json
import os
import subprocess

from conftest import REPO, g2d_command

from g2d.reproduce import RUN_SPECIFIC_COLUMNS, RUN_SPECIFIC_KEYS, UNCOMPARED_FILES, table_differences


#: A guard against a hung batch, not a speed target (speed is `make bench`'s): the batch takes about 20-30 minutes on
#: 2 cores, longer on a loaded machine.
SMOKE_BATCH_HANG_GUARD_S = 3600


def test_smoke_batch_runs_every_experiment_and_writes_a_manifest(tmp_path):
    figures, runs = tmp_path / "figures", tmp_path / "runs"
    # as `make reproduce` makes the committed figures/smoke: no data root (the smoke profile must not depend on
    # $G2D_DATA, e.g. for its mask templates) and an empty cache root
    env = {**{k: v for k, v in os.environ.items() if k != "G2D_DATA"}, "G2D_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(g2d_command() + ["reproduce", "--profile", "smoke", "--figures", str(figures),
                                           "--runs", str(runs), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=SMOKE_BATCH_HANG_GUARD_S, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    manifest = json.loads((figures / "smoke" / "manifest.json").read_text())
    experiments = sorted(p.name for p in (REPO / "nbs" / "experiments").glob("*.ipynb") if not p.name.startswith("_"))
    assert sorted(manifest["config"]["notebooks"]) == experiments
    assert all(v["status"] == "ok" for v in manifest["config"]["notebooks"].values())
    assert all((runs / "smoke" / name).exists() for name in experiments)
    assert manifest["git"]["commit"] is None or len(manifest["git"]["commit"]) == 40
    assert manifest["packages"]["torch"] and set(manifest["timings"]) == {n[:-6] for n in experiments}
    assert "environment.json" in manifest["outputs"]
    # the committed figures/smoke tables are what this code gives (timings, paths, manifest, figure bytes aside:
    # see g2d.reproduce.RUN_SPECIFIC_KEYS, RUN_SPECIFIC_COLUMNS and UNCOMPARED_FILES for what is left out)
    differences = table_differences(REPO / "figures" / "smoke", figures / "smoke")
    assert not differences, ("the committed figures/smoke tables differ from a fresh smoke batch; regenerate them "
                             "(g2d reproduce --profile smoke from an empty cache) and commit:\n" + "\n".join(differences))


def test_cpu_batch_records_the_data_fingerprint(tmp_path, real_data_root):
    figures = tmp_path / "figures"
    done = subprocess.run(g2d_command() + ["reproduce", "--profile", "cpu", "--data", str(real_data_root),
                                           "--only", "00_environment", "--figures", str(figures),
                                           "--runs", str(tmp_path / "runs")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    manifest = json.loads((figures / "cpu" / "manifest.json").read_text())
    lfw = manifest["data"]["datasets"]["lfw"]
    assert lfw["files"] >= 13233 and len(lfw["sha256_paths_sizes"]) == 64
    environment = json.loads((figures / "cpu" / "environment.json").read_text())
    assert environment["profile"]["name"] == "cpu" and environment["datasets"]["lfw"]


def test_partial_rerun_keeps_the_earlier_run_in_the_manifest(tmp_path):
    "--only over an earlier run's outputs: the notebooks not rerun keep their entries, the earlier manifest is kept."
    figures, runs = tmp_path / "figures", tmp_path / "runs"

    def reproduce(*only):
        done = subprocess.run(g2d_command() + ["reproduce", "--profile", "smoke", "--figures", str(figures),
                                               "--runs", str(runs), "--only", *only],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads((figures / "smoke" / "manifest.json").read_text())

    first = reproduce("00_environment", "90_summary")
    second = reproduce("90_summary")
    notebooks = second["config"]["notebooks"]
    assert set(notebooks) == {"00_environment.ipynb", "90_summary.ipynb"}
    assert notebooks["00_environment.ipynb"]["from_earlier_run"] == first["created"]
    assert "from_earlier_run" not in notebooks["90_summary.ipynb"]
    assert second["config"]["earlier_run"]["created"] == first["created"]
    assert set(second["timings"]) == {"90_summary"}


def test_the_fields_left_out_of_the_comparison_are_run_specific_only():
    "What legitimately varies between two smoke batches, by name; anything else in a committed table is compared."
    assert set(UNCOMPARED_FILES) == {"manifest.json", "environment.json"}
    assert set(RUN_SPECIFIC_KEYS) == {"seconds", "stage_seconds", "train_seconds_this_call", "curves_seconds",
                                      "release_seconds", "timings", "throughput", "run_dir", "created", "git",
                                      "machine", "duration", "date"}
    assert set(RUN_SPECIFIC_COLUMNS) == {"train s", "seconds", "s", "time", "duration", "faces/s"}
    assert table_differences(REPO / "figures" / "smoke", REPO / "figures" / "smoke") == []


def test_only_without_names_is_a_usage_error(tmp_path):
    done = subprocess.run(g2d_command() + ["reproduce", "--profile", "smoke", "--figures", str(tmp_path / "f"),
                                           "--runs", str(tmp_path / "r"), "--only"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--only" in done.stderr
    assert not (tmp_path / "f").exists()  # nothing ran


def _perturbed(value, factor):
    "Every float of a JSON value multiplied by `factor` (ints, strings and booleans kept)."
    if isinstance(value, dict):
        return {k: _perturbed(v, factor) for k, v in value.items()}
    if isinstance(value, list):
        return [_perturbed(v, factor) for v in value]
    return value * factor if isinstance(value, float) else value


def test_the_comparison_catches_stale_results_and_lets_last_bit_noise_through(tmp_path):
    """The committed smoke tables beside (1) those committed before the released model was retrained (a real change
    of code and weights: tests/data/stale_smoke, copied from that commit), (2) themselves with every JSON float moved
    by a relative 3e-6 (two CPUs' float32 noise), (3) themselves with one FDR moved by 1% and one EER by two pairs."""
    import shutil

    committed = REPO / "figures" / "smoke"
    stale = REPO / "tests" / "data" / "stale_smoke"
    names = sorted(p.name for p in stale.iterdir())
    assert names == ["explorer.json", "g2d_release.json"]
    mine = tmp_path / "committed"
    mine.mkdir()
    for name in names:
        shutil.copy(committed / name, mine / name)
    found = table_differences(mine, stale)
    assert any(f.startswith("explorer.json/calibration/thresholds/G2D (shipped calibration)/0.01") for f in found), found
    assert any(f.startswith("g2d_release.json/") for f in found), found

    noisy, changed = tmp_path / "noisy", tmp_path / "changed"
    for folder in (noisy, changed):
        folder.mkdir()
    jsons = [p for p in committed.glob("*.json") if p.name not in UNCOMPARED_FILES]
    for path in jsons:
        table = json.loads(path.read_text())
        (noisy / path.name).write_text(json.dumps(_perturbed(table, 1 + 3e-6)))
        shutil.copy(path, mine / path.name)
    assert table_differences(mine, noisy) == []
    teacher = json.loads((committed / "g2d_vs_teacher.json").read_text())
    first = next(iter(teacher["metrics"]))
    teacher["metrics"][first]["FDR"] *= 1.01
    teacher["metrics"][first]["EER"] += 2 / 30
    (changed / "g2d_vs_teacher.json").write_text(json.dumps(teacher))
    shutil.copy(committed / "g2d_vs_teacher.json", mine / "g2d_vs_teacher.json")
    for path in jsons:
        if path.name != "g2d_vs_teacher.json":
            (mine / path.name).unlink()
    found = table_differences(mine, changed)
    assert sorted(f.split(":")[0] for f in found) == sorted(f"g2d_vs_teacher.json/metrics/{first}/{m}" for m in ("EER", "FDR"))
