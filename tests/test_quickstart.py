"""The README's Quickstart, run exactly as printed: its Python snippet (a file of its own, run by this interpreter)
and its `g2d verify` line (the installed command), in a folder holding two photos under the names the README
uses (`face1.jpg`, `face2.jpg`). The photos: g2d's embedded synthetic faces (any clone), and real LFW photos and
real masked photos when $G2D_DATA is set."""
import ast
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, g2d_command

PHOTOS = ("face1.jpg", "face2.jpg")


def quickstart() -> tuple[str, str]:
    "The Quickstart section's Python snippet and its `g2d verify` command line."
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quickstart\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Quickstart' section"
    python = re.findall(r"```python\n(.*?)```", section.group(1), re.DOTALL)
    shell = re.findall(r"```bash\n(.*?)```", section.group(1), re.DOTALL)
    assert len(python) == 1 and len(shell) == 1, "the Quickstart holds one python and one bash block"
    assert len(python[0].strip().splitlines()) <= 5, "the Quickstart's Python is five lines at most"
    verify = [line for line in shell[0].splitlines() if line.startswith("g2d verify")]
    assert len(verify) == 1
    for name in PHOTOS:
        assert name in python[0] and name in verify[0], f"the snippets name the photos {PHOTOS}"
    return python[0], verify[0]


def run_both(folder):
    "(decision the snippet printed, the command's stdout) in `folder`, which holds the two photos."
    snippet, command = quickstart()
    (folder / "quickstart.py").write_text(snippet)
    done = subprocess.run([sys.executable, "quickstart.py"], cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    argv = shlex.split(command)
    done = subprocess.run(g2d_command() + argv[1:], cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return printed, done.stdout.strip()


def check(printed: dict, line: str):
    "The snippet's decision is well formed and agrees with the command's."
    from g2d.model import load_pretrained

    threshold = load_pretrained().metadata["thresholds"]["0.01"]["threshold"]
    assert set(printed) == {"similarity", "fmr", "threshold", "same_person"}
    assert printed["fmr"] == 0.01 and printed["threshold"] == threshold and -1 <= printed["similarity"] <= 1 + 1e-6
    assert printed["same_person"] == (printed["similarity"] >= threshold)
    match = re.match(r"similarity (-?[\d.]+), threshold ([\d.]+) \(FMR 0\.01(?:, the default)?\): (same person|different people)\b",
                     line)
    assert match, line
    assert abs(float(match.group(1)) - printed["similarity"]) < 1e-4 and abs(float(match.group(2)) - threshold) < 1e-4
    assert (match.group(3) == "same person") == printed["same_person"]


def write_synthetic(folder, masked: bool):
    "Two photos of one synthetic person (the second one masked if `masked`), 160 px, as JPEG files."
    from g2d.masks import MaskSpec, apply_mask
    from g2d.synthetic import SyntheticFaces

    faces = SyntheticFaces(2, 2, size=160, seed=0)
    for name, index in zip(PHOTOS, (0, 1)):
        image, landmarks = faces.render(index)
        if masked and index == 1:
            image = apply_mask(image, landmarks, MaskSpec("surgical", colour=(140, 190, 225))).image
        Image.fromarray(image).save(folder / name, quality=95)


@pytest.mark.parametrize("masked", [False, True])
def test_quickstart_on_synthetic_photos(tmp_path, masked):
    write_synthetic(tmp_path, masked)
    printed, line = run_both(tmp_path)
    check(printed, line)


def test_quickstart_on_one_photo_twice_says_same_person(tmp_path):
    "A photo against itself: similarity 1 and 'same person' (the decision follows the similarity)."
    write_synthetic(tmp_path, False)
    shutil.copy(tmp_path / PHOTOS[0], tmp_path / PHOTOS[1])
    printed, line = run_both(tmp_path)
    check(printed, line)
    assert printed["similarity"] > 0.9999 and printed["same_person"]


def lfw_genuine_pair(root):
    "The first genuine pair of LFW's View 2 (two photos of one person)."
    lines = (root / "lfw_meta" / "pairs.txt").read_text().split("\n")[1:]
    name, i, j = next(line.split() for line in lines if len(line.split()) == 3)
    return [root / "lfw" / name / f"{name}_{int(k):04d}.jpg" for k in (i, j)]


def test_quickstart_on_real_photos(tmp_path, real_data_root):
    "LFW photos of one person, then an LFW photo against a real photo of a masked face."
    first, second = lfw_genuine_pair(real_data_root)
    masked = sorted((real_data_root / "real_masked" / "with_mask").glob("*"))
    if not first.is_file() or not masked:
        pytest.skip(f"needs LFW and real_masked under {real_data_root}")
    for a, b in ((first, second), (first, masked[0])):
        shutil.copy(a, tmp_path / PHOTOS[0])
        shutil.copy(b, tmp_path / PHOTOS[1])
        printed, line = run_both(tmp_path)
        check(printed, line)


def test_quickstart_names_a_missing_photo(tmp_path):
    "Without the photos, the command says which file is missing, in one line, and exits 1."
    _, command = quickstart()
    done = subprocess.run(g2d_command() + shlex.split(command)[1:], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    # OpenCV's own warnings (lines starting '[ WARN') may come first; g2d's error is one line
    ours = [line for line in done.stderr.strip().splitlines() if not line.startswith("[ WARN")]
    assert done.returncode == 1 and len(ours) == 1 and ours[0].startswith("g2d verify: error:") and "face1.jpg" in ours[0]


def test_quickstart_prints_what_the_readme_says_on_its_example_pair(tmp_path, real_data_root):
    "The README's expected output, on the LFW pair it names: the same decision, similarity and threshold (to 1e-3)."
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quickstart\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL).group(1)
    expected_python, expected_line = [block.strip() for block in re.findall(r"```text\n(.*?)```", section, re.DOTALL)]
    names = re.findall(r"`(\w+_\d{4}\.jpg)`", section)[:2]
    photos = [real_data_root / "lfw" / name.rsplit("_", 1)[0] / name for name in names]
    if len(photos) != 2 or not all(p.is_file() for p in photos):
        pytest.skip(f"needs the LFW photos {names} under {real_data_root / 'lfw'}")
    for photo, name in zip(photos, PHOTOS):
        shutil.copy(photo, tmp_path / name)
    printed, line = run_both(tmp_path)
    check(printed, line)
    expected = ast.literal_eval(expected_python)
    assert printed["same_person"] == expected["same_person"] and printed["fmr"] == expected["fmr"]
    assert abs(printed["similarity"] - expected["similarity"]) < 1e-3
    assert abs(printed["threshold"] - expected["threshold"]) < 1e-6
    number = r"-?\d+\.\d+"
    assert re.sub(number, "N", line) == re.sub(number, "N", expected_line), (line, expected_line)
    for got, want in zip(re.findall(number, line), re.findall(number, expected_line)):
        assert abs(float(got) - float(want)) < 2e-3, (line, expected_line)
