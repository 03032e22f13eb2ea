"""Dataset readers and `g2d data check`: exact-format fixtures written by the test (always) and the real data (when present)."""
import json
import subprocess
from pathlib import Path

import pytest
from conftest import g2d_command

from g2d.datasets import ImageReadError, MissingPairImagesError, open_dataset, write_example_layout

FACE_DATASETS = ("celeba", "lfw", "mfr2", "rmfd", "mlfw", "cplfw")


def data_check(*args):
    return subprocess.run(g2d_command() + ["data", "check", *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture
def example_root(tmp_path):
    for name in FACE_DATASETS:
        write_example_layout(name, tmp_path)
    return tmp_path


def test_check_reads_every_layout(example_root):
    done = data_check("--root", example_root, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and sorted(result["datasets"]) == sorted(FACE_DATASETS)
    for name in FACE_DATASETS:
        report = result["datasets"][name]
        dataset = open_dataset(name, example_root)
        assert (report["images"], report["identities"], report["pairs"]) == (
            len(dataset), len(dataset.identities), None if dataset.pairs is None else len(dataset.pairs))
        assert report["problems"] == [] and "decoded a random sample" in report["checked"]
    assert result["datasets"]["celeba"]["details"]["rows without an image file"] == 2
    assert result["datasets"]["mfr2"]["masked_images"] == 4 and result["datasets"]["rmfd"]["masked_images"] == 6


def test_check_names_an_unreadable_image_and_fails(tmp_path):
    folder = write_example_layout("mfr2", tmp_path, corrupt=True)
    done = data_check("--root", tmp_path, "--json", "--decode")
    assert done.returncode == 1
    report = json.loads(done.stdout)["datasets"]["mfr2"]
    broken = str((folder / "Ann_Lee" / "Ann_Lee_0001.png").resolve())
    assert list(report["unreadable"]) == [broken] and report["checked"].startswith("decoded every image")
    dataset = open_dataset("mfr2", tmp_path)
    with pytest.raises(ImageReadError, match="Ann_Lee_0001.png"):
        dataset[dataset.index_of(dataset.refs[0])]


def test_check_finds_a_file_that_is_not_an_image_without_decoding_it(tmp_path):
    folder = write_example_layout("lfw", tmp_path)
    (folder / "Ann_Lee" / "Ann_Lee_0003.jpg").write_text("<html>not found</html>")
    done = data_check("--root", tmp_path, "--sample", "0")
    assert done.returncode == 1 and "Ann_Lee_0003.jpg (not a JPEG/PNG/BMP/WebP file)" in done.stdout


def test_check_lists_pairs_naming_missing_images(tmp_path):
    folder = write_example_layout("cplfw", tmp_path)
    (folder / "images" / "Cy_Park_1.jpg").unlink()
    done = data_check("--root", tmp_path, "--json")
    report = json.loads(done.stdout)["datasets"]["cplfw"]
    assert done.returncode == 1 and report["pairs"] == 3
    assert any("pair images missing: Cy_Park_1.jpg" in problem for problem in report["problems"])
    with pytest.raises(MissingPairImagesError, match="1 pair line"):
        open_dataset("cplfw", tmp_path)


def test_check_reports_a_missing_annotation_file(tmp_path):
    folder = write_example_layout("celeba", tmp_path)
    (folder / "identity_CelebA.txt").unlink()
    done = data_check("--root", tmp_path, "--json")
    report = json.loads(done.stdout)["datasets"]["celeba"]
    assert done.returncode == 1 and report["images"] is None and "identity_CelebA.txt" in report["problems"][0]


def test_check_on_a_wrong_root_says_why(tmp_path):
    done = data_check("--root", tmp_path / "nowhere")
    assert done.returncode == 1 and "is not a directory" in done.stderr
    done = data_check("--root", tmp_path)
    assert done.returncode == 1 and "no known face dataset" in done.stderr


def test_check_human_output_and_dataset_selection(example_root):
    done = data_check("--root", example_root, "--datasets", "lfw", "mlfw")
    assert done.returncode == 0 and "all datasets ok" in done.stdout
    assert "lfw " in done.stdout and "8 images  4 identities  4 pairs" in done.stdout and "celeba" not in done.stdout


def test_real_data_counts(real_data_root):
    if not (real_data_root / "lfw").is_dir() or not (real_data_root / "celeba").is_dir():
        pytest.skip(f"needs lfw/ and celeba/ under {real_data_root}")
    done = data_check("--root", real_data_root, "--json", "--datasets", "lfw", "celeba")
    assert done.returncode == 0, done.stdout + done.stderr
    datasets = json.loads(done.stdout)["datasets"]
    assert (datasets["lfw"]["images"], datasets["lfw"]["identities"], datasets["lfw"]["pairs"]) == (13233, 5749, 6000)
    assert (datasets["celeba"]["images"], datasets["celeba"]["identities"]) == (10000, 5429)
    assert datasets["celeba"]["details"]["rows without an image file"] == 202599 - 10000


def test_real_lfw_protocol(real_data_root):
    from g2d.pairs import check_identity_disjoint
    if not (real_data_root / "lfw").is_dir():
        pytest.skip(f"needs lfw/ under {real_data_root}")
    lfw = open_dataset("lfw", real_data_root)
    assert not check_identity_disjoint(lfw.pairs) and {p.fold for p in lfw.pairs} == set(range(10))
    image = lfw.image_of(lfw.pairs[-1].probe)
    assert image.shape == (250, 250, 3) and image.dtype.name == "uint8"
