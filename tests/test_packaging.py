"""deploy/: the wheel as users install it, the image's steps, the compose file, the unit.

Docker is not available where this suite runs, so the image is checked
through what it runs: its build is ``deploy/install-wheel``, the script
the first test runs here, from a copy of the source into a fresh
virtualenv outside the repository, before serving from a folder with no
repository around it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tidings.harness.spawn import free_port

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
# What a source copy leaves out: the same as the image's build context (.dockerignore).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "data", "node_modules",
    "results", ".mypy_cache", ".pytest_cache", ".ruff_cache",
)  # fmt: skip


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_wheel_installs_with_its_extras_and_serves_with_no_repository_around_it(
    tmp_path: Path,
) -> None:
    source, venv, home = tmp_path / "source", tmp_path / "venv", tmp_path / "run"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    home.mkdir()
    # No PYTHONPATH, no virtualenv of ours: only how to reach the package index.
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("PIP_") or name.lower().endswith("_proxy")
    }
    env |= {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    subprocess.run(
        [str(DEPLOY / "install-wheel"), str(source), str(venv)],
        env=env | {"PYTHON": sys.executable},
        check=True,
        timeout=540,
    )
    python = venv / "bin" / "python"
    where = subprocess.run(
        [python, "-c", "import asyncpg, redis, hiredis, tidings; print(tidings.__file__)"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where

    port = free_port()
    server = subprocess.Popen(
        [venv / "bin" / "tidings", "serve", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, _ = get(url + "/readyz")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, server.stderr.read().decode() if server.poll() is not None else ""
        page_status, page = get(url + "/")
        assert page_status == 200 and "<html" in page.lower()
        script = re.search(r'src="/?([^"]+\.js)"', page)
        assert script is not None, "the page loads no script"
        assert get(f"{url}/{script.group(1)}")[0] == 200  # the web client's files are in the wheel
        assert (home / "data" / "tidings.db").exists()  # migrated: the migrations are in it too
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(30)
        assert server.stderr is not None
        server.stderr.close()
    assert code == 0


def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads deploy/compose.yaml")
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_postgresql_redis_two_tidings_nodes_and_nginx() -> None:
    services = compose()["services"]
    nodes = {name: s for name, s in services.items() if s.get("image", "").startswith("tidings")}
    assert set(services) == {"postgres", "redis", "nginx", *nodes} and len(nodes) == 2
    assert services["postgres"]["image"].startswith("postgres:15")
    for node in nodes.values():
        assert node["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / node["build"]["context"] / node["build"]["dockerfile"]).exists()
        env = node["environment"]
        assert "@postgres:5432/" in env["TIDINGS_DATABASE_URL"]
        assert env["TIDINGS_REDIS_URL"].startswith("redis://redis:6379")
        assert set(node["depends_on"]) == {"postgres", "redis"}
        assert int(node["stop_grace_period"].removesuffix("s")) > 30  # the workers' drain
    nginx = services["nginx"]
    assert set(nginx["depends_on"]) == set(nodes)
    mounted, target = nginx["volumes"][0].split(":")[:2]
    assert (DEPLOY / mounted).exists() and target == "/etc/nginx/conf.d/default.conf"
    upstream = re.findall(r"server (\S+):8080", (DEPLOY / mounted).read_text())
    assert sorted(upstream) == sorted(nodes)


def test_the_compose_nginx_site_is_deploy_nginx_conf_with_its_upstream_changed() -> None:
    def body(path: Path) -> str:
        text = path.read_text()
        text = text[text.index("upstream tidings {") :]
        return re.sub(r"    server \S+ max_fails[^\n]*\n", "", text)

    assert body(DEPLOY / "nginx-compose.conf") == body(DEPLOY / "nginx.conf")


def test_the_image_is_built_by_the_script_ci_runs_and_runs_as_no_root() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    runs = [line for line in lines if line.startswith("RUN ")]
    assert "RUN deploy/install-wheel /src /opt/tidings" in runs  # the steps of the test above
    assert "COPY --from=build /opt/tidings /opt/tidings" in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    (healthcheck,) = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert "/readyz" in healthcheck
    assert lines[-1] == 'CMD ["tidings", "serve"]'
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "data"} <= set(ignored)


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = (DEPLOY / "tidings.service").read_text()
    assert "EnvironmentFile=/etc/tidings/tidings.env" in unit
    assert "User=tidings" in unit and "NoNewPrivileges=yes" in unit
    # verify wants ExecStart's program to exist: point it at this install's.
    installed = Path(sys.executable).parent / "tidings"
    (tmp_path / "tidings.service").write_text(
        unit.replace("/opt/tidings/bin/tidings", str(installed))
    )
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "tidings.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "tidings.service" not in done.stderr, done.stderr  # no warning about the unit
