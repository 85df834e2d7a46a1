"""The layer contracts of pyproject.toml (`make lint` runs them) hold, and catch a wrong import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "tidings", tmp_path / "tidings", ignore=shutil.ignore_patterns("__pycache__", "web")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_layer_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_presence_importing_the_gateway_breaks_the_layers(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    local = tree / "tidings" / "presence" / "local.py"
    local.write_text(local.read_text() + "\nfrom tidings.gateway.hub import Hub  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "Layers point down BROKEN" in result.stdout
    assert "tidings.presence.local -> tidings.gateway.hub" in result.stdout


def test_the_service_importing_a_database_driver_is_refused(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    groups = tree / "tidings" / "service" / "groups.py"
    groups.write_text(groups.read_text() + "\nimport sqlalchemy  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "The rules know no transport and no database BROKEN" in result.stdout
