"""Dataset readers and `g2d data check`: exact-format fixtures written by the test (always) and the real data (when present)."""
import json
import subprocess
from pathlib import Path

import pytest
from conftest import g2d_command

from g2d.datasets import (AnnotationFormatError, ImageReadError, MissingPairImagesError, face_datasets_found,
                          open_dataset, write_example_layout)

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


def test_check_reports_pairs_no_protocol_means(tmp_path):
    "An image paired with itself, an impostor pair of one identity, a repeated line: each reported, exit 1."
    write_example_layout("lfw", tmp_path)
    (tmp_path / "lfw_meta" / "pairs.txt").write_text(
        "1\t3\nAnn_Lee\t2\t2\nBo_Diaz\t1\t2\nBo_Diaz\t2\t1\nAnn_Lee\t1\tAnn_Lee\t3\nDi_Mora\t1\tBo_Diaz\t2\nCy_Park\t1\tBo_Diaz\t2\n")
    done = data_check("--root", tmp_path, "--json")
    report = json.loads(done.stdout)["datasets"]["lfw"]
    assert done.returncode == 1, done.stdout
    assert report["problems"] == ["1 pairs of an image with itself: Ann_Lee/Ann_Lee_0002 & Ann_Lee/Ann_Lee_0002",
                                  "1 impostor pairs of one identity: Ann_Lee/Ann_Lee_0001 & Ann_Lee/Ann_Lee_0003",
                                  "1 pairs listed more than once: Bo_Diaz/Bo_Diaz_0002 & Bo_Diaz/Bo_Diaz_0001"]
    assert len(open_dataset("lfw", tmp_path).pairs) == 6  # an evaluation still opens it


def test_check_reports_conflicting_celeba_rows(tmp_path):
    folder = write_example_layout("celeba", tmp_path)
    rows = folder / "identity_CelebA.txt"
    rows.write_text(rows.read_text() + "000003.jpg 4153\n")  # 000003.jpg was 2880: which one?
    done = data_check("--root", tmp_path, "--json")
    report = json.loads(done.stdout)["datasets"]["celeba"]
    assert done.returncode == 1
    assert report["problems"] == ["1 images with conflicting rows in identity_CelebA.txt: 000003.jpg (line 3: 2880, line 9: 4153)"]
    assert report["images"] == 5  # the ambiguous image is left out
    with pytest.raises(AnnotationFormatError, match="conflicting rows"):
        open_dataset("celeba", tmp_path)


@pytest.mark.parametrize("damage, message", [
    ("cfg", "not a valid masks.cfg"), ("missing", "cloth.png does not exist"), ("corrupt", "1 unusable template"),
    ("rgb", "must be an RGBA PNG")])
def test_check_reports_a_broken_mask_template_folder(tmp_path, damage, message):
    import cv2
    import numpy as np
    from g2d.masks import write_test_templates

    write_example_layout("lfw", tmp_path)
    folder = write_test_templates(tmp_path / "mask_templates")
    assert data_check("--root", tmp_path).returncode == 0
    if damage == "cfg":
        (folder / "masks.cfg").write_text("[surgical]\ntemplate: a.png\na = 1\n[broken\n")
    elif damage == "missing":
        (folder / "templates" / "cloth.png").unlink()
    elif damage == "corrupt":
        (folder / "templates" / "cloth_right.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    else:
        cv2.imwrite(str(folder / "templates" / "surgical.png"), np.zeros((10, 10, 3), np.uint8))
    done = data_check("--root", tmp_path, "--json")
    result = json.loads(done.stdout)
    assert done.returncode == 1 and result["datasets"]["lfw"]["problems"] == []
    assert message in " ".join(result["datasets"]["mask_templates"]["problems"]), result["datasets"]["mask_templates"]


def test_check_counts_cfp(tmp_path):
    write_example_layout("cfp", tmp_path)
    done = data_check("--root", tmp_path, "--json")
    result = json.loads(done.stdout)
    assert done.returncode == 0 and list(result["datasets"]) == ["cfp"], done.stdout
    report = result["datasets"]["cfp"]
    assert (report["images"], report["identities"]) == (12, 4)
    assert report["details"]["FF pairs"] == report["details"]["FP pairs"] == 4 and report["details"]["profile images"] == 4
    (tmp_path / "cfp" / "Data" / "Fiducials" / "002" / "frontal" / "01.txt").write_text("10,20\n" * 29 + "10;20\n")
    done = data_check("--root", tmp_path)
    assert done.returncode == 1 and "images without usable fiducials" in done.stdout and "01.txt:30" in done.stdout


def test_rmfd_pair_protocol_is_fixed_balanced_and_uses_every_masked_probe(example_root):
    "Tab 2's protocol (masked_unmasked_pairs): each masked photo is the probe of one genuine and one impostor pair."
    from collections import Counter

    rmfd = open_dataset("rmfd", example_root)
    pairs = rmfd.masked_unmasked_pairs()
    masked = sorted(ref for ref, m in rmfd.masked.items() if m)
    genuine, impostor = [p for p in pairs if p.genuine], [p for p in pairs if not p.genuine]
    assert len(genuine) == len(impostor) == len(masked)
    for kind in (genuine, impostor):
        assert Counter(p.probe for p in kind) == Counter(masked)  # every masked probe, once per kind
        assert all(not rmfd.masked[p.reference] for p in kind)  # references are unmasked photos
    assert all(p.reference.identity == p.probe.identity for p in genuine)
    assert all(p.reference.identity != p.probe.identity for p in impostor)
    assert rmfd.masked_unmasked_pairs() == pairs  # seeded: the same pairs every time
    assert rmfd.masked_unmasked_pairs(seed=1) != pairs


def test_real_rmfd_protocol(real_data_root):
    if "rmfd" not in face_datasets_found(real_data_root):
        pytest.skip("needs RMFD under the data root")
    rmfd = open_dataset("rmfd", real_data_root)
    pairs = rmfd.masked_unmasked_pairs()
    assert len(rmfd.identities) == 23 and sum(rmfd.masked.values()) == 473 and len(rmfd) == 933
    assert len(pairs) == 946 and sum(p.genuine for p in pairs) == 473
