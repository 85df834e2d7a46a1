"""`tidings serve` as a newcomer runs it: `make run` installs no extras."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from tidings.harness.spawn import free_port

# Runs the command as if the optional extras were not installed: importing
# them raises ModuleNotFoundError, as on a fresh `pip install tidings`.
WITHOUT_EXTRAS = """
import sys
for name in ("redis", "asyncpg", "asyncmy", "hiredis", "psutil"):
    sys.modules[name] = None
from tidings.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_extras(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_on_sqlite_needs_no_extra(tmp_path: Path) -> None:
    port = free_port()
    process = run_without_extras(tmp_path, "serve", "--port", str(port))
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == f"tidings listening on http://127.0.0.1:{port}\n", process.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
        assert (tmp_path / "data" / "tidings.db").exists()
    finally:
        process.terminate()
        process.wait(20)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == 0


def test_a_backend_without_its_extra_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    cases = [
        (["serve", "--port", str(free_port()), "--redis", "redis://127.0.0.1:6379/0"], "redis"),
        (["serve", "--database", "postgresql+asyncpg://postgres@127.0.0.1/test"], "postgres"),
        (["migrate", "--database", "mysql+asyncmy://root@127.0.0.1/test"], "mysql"),
        (["bench", "private"], "bench"),
    ]
    for args, extra in cases:
        process = run_without_extras(tmp_path, *args)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 1, (args, out, err)
        assert f"tidings[{extra}]" in err, err
        assert "Traceback" not in err, err
