"""Shared fixtures: the repository root and the real data root (tests that need it skip with a message)."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    "The data root from $G2D_DATA; skips the test when it is unset or missing."
    root = os.environ.get("G2D_DATA")
    if not root:
        pytest.skip("needs real data: set G2D_DATA to a data root (make test uses ../shared/data when present)")
    if not Path(root).is_dir():
        pytest.skip(f"needs real data: G2D_DATA={root} is not a directory")
    return Path(root)


def g2d_command() -> list[str]:
    "The installed `g2d` console script of the interpreter running the tests."
    script = BIN / "g2d"
    if not script.exists():
        pytest.fail(f"the g2d console script is not installed beside {sys.executable} (run make install)")
    return [str(script)]
