"""The project's own files: the code passes ruff with pyproject.toml's settings, and pyproject.toml's
metadata and ``fer`` command point at what exists. (The ``fer`` command is installed and run for real in
tests/test_install.py.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from test_pins import REPO, in_requirements, installed, read_pins


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_code_passes_ruff():
    if installed("ruff") is None:
        pytest.fail("ruff is missing: pip install -r requirements-dev.txt")
    assert installed("ruff") == read_pins(REPO / "requirements-dev.txt")["ruff"]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_ruff_reads_the_projects_settings():
    """A config ruff does not find would pass everything: its resolved settings must be pyproject's."""
    lint = pyproject()["tool"]["ruff"]["lint"]
    assert {"E", "F", "W", "I", "B"} <= set(lint["select"])
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-settings", "fer/cli.py"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)
    assert str(REPO / "pyproject.toml") in done.stdout
    assert "line_length = 120" in done.stdout.replace("line-length", "line_length")


def test_the_fer_command_is_the_module_entry_point():
    from fer.cli import main

    project = pyproject()["project"]
    assert project["scripts"] == {"fer": "fer.cli:main"}
    module, _, attr = project["scripts"]["fer"].partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is main


def test_pyproject_takes_its_dependencies_from_requirements_in():
    """setuptools reads requirements.in line by line: every non-comment line must be a bare requirement."""
    tool = pyproject()["tool"]["setuptools"]
    assert pyproject()["project"]["dynamic"] == ["dependencies"]
    assert tool["dynamic"]["dependencies"] == {"file": ["requirements.in"]}
    lines = [ln.strip() for ln in (REPO / "requirements.in").read_text().splitlines()]
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    assert body and all(Requirement(ln) and "#" not in ln and not ln.startswith("-") for ln in body)
    assert [r.name for r in in_requirements(REPO / "requirements.in")] == [Requirement(ln).name for ln in body]
    assert tool["package-data"] == {"fer": ["assets/*"]} and (REPO / "fer" / "assets" / "centerface.onnx").is_file()
    assert shutil.which("git") is None or "fer/assets/centerface.onnx" in subprocess.run(
        ["git", "ls-files", "fer/assets"], cwd=REPO, capture_output=True, text=True, check=False).stdout
