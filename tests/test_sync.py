"""g2d/ is generated: it must equal a fresh `nbdev_export` of nbs/, and notebooks must be committed clean."""
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, REPO


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    "A copy of nbs/ and settings.ini, exported and cleaned by nbdev in a temporary folder."
    work = tmp_path_factory.mktemp("sync")
    shutil.copytree(REPO / "nbs", work / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(REPO / "settings.ini", work / "settings.ini")
    for tool in ("nbdev_export", "nbdev_clean"):
        done = subprocess.run([str(BIN / tool)], cwd=work, capture_output=True, text=True)
        assert done.returncode == 0, f"{tool} failed:\n{done.stdout}\n{done.stderr}"
    return work


#: Folders of g2d/ that hold data, not generated code: the released weights (g2d.model.load_pretrained).
DATA_FOLDERS = ("weights",)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.relative_to(folder).parts[0] not in DATA_FOLDERS}


def test_package_equals_fresh_export(fresh_copy):
    exported, committed = fresh_copy / "g2d", REPO / "g2d"
    assert _files(exported) == _files(committed), (
        "g2d/ has files a fresh export does not make (or lacks some): edit notebooks, then `make export`")
    differing = [name for name in sorted(_files(exported))
                 if not filecmp.cmp(exported / name, committed / name, shallow=False)]
    assert not differing, f"g2d/ differs from a fresh nbdev_export in {differing}: never edit g2d/ by hand; run `make export`"


def test_notebooks_are_clean(fresh_copy):
    notebooks = sorted(p.relative_to(REPO / "nbs") for p in (REPO / "nbs").rglob("*.ipynb")
                       if ".ipynb_checkpoints" not in p.parts)
    assert notebooks, "no notebooks found in nbs/"
    dirty = [str(nb) for nb in notebooks
             if (fresh_copy / "nbs" / nb).read_bytes() != (REPO / "nbs" / nb).read_bytes()]
    assert not dirty, f"notebooks not clean (run `make export`, which runs nbdev_clean): {dirty}"
