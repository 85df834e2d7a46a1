"""The layer contracts of pyproject.toml (`make lint` runs them) hold, and catch a wrong import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    ("module", "wrong_import", "broken"),
    [
        ("presence/local.py", "from tidings.gateway.hub import Hub", "Layers point down"),
        ("service/groups.py", "import sqlalchemy", "The rules know no transport and no database"),
        ("client/transport.py", "import tidings.store", "The client is the SDK"),
        (
            "client/errors.py",
            "from tidings.client.stream import Client",
            "The client's modules point down",
        ),
        ("gateway/http.py", "import tidings.store.sql", "Only the wiring picks adapters"),
        ("gateway/http.py", "import tidings.files.s3", "Only the wiring picks adapters"),
        ("files/disk.py", "import tidings.store", "Layers point down"),
        ("harness/spawn.py", "import tidings.store", "The harness drives a server from outside"),
        ("workers.py", "import aiohttp", "The workers' supervisor stays small"),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    tmp_path: Path, module: str, wrong_import: str, broken: str
) -> None:
    tree = copy_of_the_package(tmp_path)
    source = tree / "tidings" / module
    source.write_text(source.read_text() + f"\n{wrong_import}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken_lines = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert [line for line in broken_lines if line.startswith(broken)], result.stdout
    assert len(broken_lines) == 1, result.stdout
