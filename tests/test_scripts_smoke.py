"""Every script in benchmarks/ and scripts/ still starts: ``--help`` in a fresh process, and a tiny real run
where one takes only seconds. A new script must be listed here (the last test fails until it is).

The long runs (a browser, a FER2013 data set, Ray, a GPU, a second venv) keep their own tests or none:
here they only have to import and parse their arguments, which is where they broke before
(benchmarks/app_memory.py imported a helper that had moved).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON_SCRIPTS = sorted(p.relative_to(REPO).as_posix() for folder in ("benchmarks", "scripts")
                        for p in (REPO / folder).glob("*.py"))
SHELL_SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "scripts").glob("*.sh"))

TINY_RUNS = {
    # script: (arguments, a text its output must hold); "{tmp}" is a fresh folder
    "scripts/export_onnx_models.py": (["--check"], "fer_default.keras: current"),
    "scripts/plot_confusion.py": (["models/fer_default.keras", "{tmp}/confusion.png"], "wrote"),
    "scripts/plot_history.py": (["models/fer_default.keras", "{tmp}/history.png"], "wrote"),
    "benchmarks/fer_framing.py": (["--no-measure", "--picture", "{tmp}/framing.png"], "framing.png"),
    "benchmarks/member_speed.py": (["models/fer_default.keras", "--repeats", "2"], "| fer_default.keras | "),
    "benchmarks/profile_speed.py": (["models/profiles.json", "--profile", "live", "--repeats", "2",
                                     "--stream-frames", "3"], "| models/profiles.json | fer_default, fer_effnet | "),
}
"""The scripts whose real work takes a few seconds on 2 cores, with arguments that keep it that small."""


def run(args: list[str], tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "FER_CACHE_DIR": str(tmp / "cache"), "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("script", PYTHON_SCRIPTS)
def test_python_script_help(script, tmp_path):
    out = run([sys.executable, script, "--help"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("usage:"), out.stdout[:500]


@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_python_script_tiny_run(script, tmp_path):
    args, expected = TINY_RUNS[script]
    out = run([sys.executable, script, *(a.replace("{tmp}", str(tmp_path)) for a in args)], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert expected in out.stdout, out.stdout[-2000:]
    for png in tmp_path.glob("*.png"):
        assert png.stat().st_size > 1000  # a real picture was drawn


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_script_parses_and_explains_itself(script, tmp_path):
    assert run(["bash", "-n", script], tmp_path).returncode == 0
    out = run(["bash", script, "--help"], tmp_path)
    assert out.returncode == 0 and "Usage" in out.stdout, out.stdout + out.stderr
    missing = run(["bash", script], tmp_path)  # no arguments: the usage line, not a half-started run
    assert missing.returncode != 0 and "usage:" in missing.stderr


def test_every_script_is_covered():
    """The lists above name existing scripts; a script added to benchmarks/ or scripts/ gets a --help check
    automatically, and a tiny run here when it can do its work in seconds."""
    assert PYTHON_SCRIPTS and SHELL_SCRIPTS
    assert set(TINY_RUNS) <= set(PYTHON_SCRIPTS)
    assert {"benchmarks/app_memory.py", "scripts/train_gpu.sh"} <= set(PYTHON_SCRIPTS) | set(SHELL_SCRIPTS)
