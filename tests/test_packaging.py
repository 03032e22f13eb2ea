"""Packaging: the wheel holds the generated package and its entry point; `import g2d` needs no notebook tooling;
`pip install .` works in a clean virtual environment; environment.yml lists what settings.ini declares."""
import configparser
import importlib
import pkgutil
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

NOTEBOOK_TOOLING = ("nbdev", "fastcore", "execnb", "jupyterlab", "notebook")


def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(REPO / "settings.ini")
    return cfg["DEFAULT"]


def all_modules() -> list[str]:
    import g2d
    return ["g2d"] + [f"g2d.{m.name}" for m in pkgutil.iter_modules(g2d.__path__) if not m.name.startswith("_")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                           str(REPO)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(out.glob("g2d-*.whl"))


def test_wheel_holds_every_generated_module_and_the_entry_point(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in all_modules():
        path = module.replace(".", "/") + ("/__init__.py" if module == "g2d" else ".py")
        assert path in names, f"{path} missing from the wheel"
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "g2d = g2d.cli:main" in entry_points


def test_wheel_holds_the_released_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "g2d" / "weights").rglob("*") if p.is_file()) \
        if (REPO / "g2d" / "weights").is_dir() else []
    if not shipped:
        pytest.skip("no released weights in g2d/weights yet")
    missing = [name for name in shipped if name not in names]
    assert not missing, f"released files missing from the wheel: {missing}"


def test_runtime_requirements_exclude_notebook_tooling(wheel):
    meta = zipfile.ZipFile(wheel).read(next(n for n in zipfile.ZipFile(wheel).namelist()
                                            if n.endswith("METADATA"))).decode()
    runtime = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert any("torch" in line for line in runtime)
    for tool in NOTEBOOK_TOOLING:
        assert not any(re.match(rf"Requires-Dist: {tool}\b", line) for line in runtime), f"{tool} is a runtime dependency"


def test_import_needs_no_notebook_tooling():
    "Every module imports with nbdev, fastcore, execnb and jupyter blocked."
    blocker = (
        "import sys, importlib.abc\n"
        f"BLOCKED = {NOTEBOOK_TOOLING!r}\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in BLOCKED: raise ImportError(f'blocked notebook tooling: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {all_modules()!r}: __import__(m)\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_environment_yml_matches_settings_ini():
    declared = settings()["requirements"].split() + settings()["dev_requirements"].split()
    pip_section = (REPO / "environment.yml").read_text().split("  - pip:\n", 1)[1]
    listed = re.findall(r"^      - (\S+)$", pip_section, re.MULTILINE)
    listed = [item for item in listed if item not in ("pip", "-e") and not item.startswith(("python=", "."))]
    assert sorted(listed) == sorted(declared)


@pytest.mark.slow
def test_pip_install_in_a_clean_venv(tmp_path, wheel):
    "`pip install` of the package (with its dependencies) in a new venv: the command and every module work."
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([str(env_dir / "bin" / "g2d"), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("g2d ")
    check = f"import importlib\nfor m in {all_modules()!r}: importlib.import_module(m)\n" \
            "import importlib.util as u\nprint([t for t in ('nbdev', 'execnb') if u.find_spec(t)])"
    done = subprocess.run([str(python), "-c", check], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", "notebook tooling was installed as a runtime dependency"
    if (REPO / "g2d" / "weights").is_dir():  # the released weights load from the installed package, no data, no training
        load = ("import numpy as np\nfrom g2d.model import estimate_occlusion, load_pretrained, pretrained_folder\n"
                "from g2d.occlusion import pretrained_estimator_folder\nm = load_pretrained()\n"
                "s = m.image_size\ne = m.embed(np.zeros((2, s, s, 3), np.uint8), np.zeros((2, s, s)))\n"
                "maps = estimate_occlusion(np.zeros((2, s, s, 3), np.uint8))  # the shipped learned estimator\n"
                "print('site-packages' in str(pretrained_folder()), 'site-packages' in str(pretrained_estimator_folder()),"
                " e.shape[0], maps.shape[0])")
        done = subprocess.run([str(python), "-c", load], capture_output=True, text=True, cwd="/")
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["True", "True", "2", "2"]
