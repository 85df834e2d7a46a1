"""``--profile``: py-spy samples the server during a run; a summary in words and percents.

py-spy reads the server's memory from outside (``--nonblocking``: the
server is never paused), so the profile costs the server nothing but the
load core's time. The raw, collapsed stacks are kept next to the summary
for flame graphs (``flamegraph.pl`` or speedscope read them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLE_RATE = 250
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Profiler:
    """One py-spy record of ``pid`` for ``seconds``, written to ``raw_path``."""

    def __init__(self, pid: int, seconds: float, raw_path: Path) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.raw_path = raw_path
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", str(SAMPLE_RATE), "--format", "raw", "--output", str(raw_path),
            "--nonblocking",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def finish(self, top: int = 25) -> str:
        """Wait for py-spy, write ``<raw>.txt`` (the summary) and return it."""
        try:
            _, errors = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, errors = self.process.communicate()
        if not self.raw_path.exists():
            return f"py-spy wrote no profile: {errors.strip()[-500:]}"
        text = summarize(self.raw_path.read_text(), top)
        self.raw_path.with_suffix(".txt").write_text(text)
        return text


def _name(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``module.py:func``; line numbers merged."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    parts = path.split("/")
    short = "/".join(parts[-2:]) if "site-packages" not in path else parts[-1]
    if "site-packages/" in path:
        short = path.split("site-packages/", 1)[1]
    return f"{short}:{match.group('func')}"


def summarize(collapsed: str, top: int = 25) -> str:
    """Self and inclusive shares of samples per function, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples (active threads only)", "", "self %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines) + "\n"
