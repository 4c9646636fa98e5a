"""A fresh machine: a new virtual environment, exactly the README's install command, the app in Chromium.

The install command is read from README.md (the ``<!-- install:app -->`` block) and run verbatim
with the new environment first on PATH; then ``streamlit run app.py`` from that environment serves
the home page on a free loopback port and Debian's Chromium loads it. The wheels come from pip's
cache when an earlier install (CI's own ``pip install``) filled it, so only unpacking costs time.
Skipped when no package index is reachable, when this is not the README's Python (3.11), or
without Chromium and Playwright; ``FER_SKIP_INSTALL_TEST=1`` skips it on purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamlit_server import streamlit_server
from test_pins import REPO, canonical, read_pins, readme_commands

CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
INSTALL_TIMEOUT = 1500  # seconds; ~3-10 min measured (see the report in docs/deploy.md)

pytestmark = [
    pytest.mark.install,
    pytest.mark.skipif(os.environ.get("FER_SKIP_INSTALL_TEST") == "1", reason="FER_SKIP_INSTALL_TEST=1"),
    pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the README's install is for Python 3.11"),
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a new shell with ``venv`` activated: nothing of this test process leaks in."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP") and not k.startswith("FER_")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def index_reachable(tmp: Path) -> bool:
    """Can pip fetch a pinned package (from the index or its cache)? Network only: no install."""
    tqdm = read_pins(REPO / "constraints.txt")["tqdm"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(tmp), f"tqdm=={tqdm}"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=120, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def split_command(command: str) -> tuple[str, str]:
    """README's one-liner -> (the install part, the ``streamlit run app.py`` part)."""
    parts = [p.strip() for p in command.split("&&")]
    run = [p for p in parts if p.startswith("streamlit run")]
    assert len(run) == 1 and parts[-1] == run[0], f"the app command must end with 'streamlit run app.py': {command}"
    return " && ".join(parts[:-1]), run[0]


def assert_consistent(python: Path, env: dict[str, str]) -> None:
    """Everything installed is pinned at its pin, and ``pip check`` is clean (but for the ``--no-deps`` wheels)."""
    pins, no_deps = read_pins(REPO / "constraints.txt"), read_pins(REPO / "requirements-nodeps.txt")
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], env=env, capture_output=True, text=True,
                            timeout=300, check=True).stdout
    got = {canonical(name): version for name, _, version in (ln.partition("==") for ln in freeze.split()) if version}
    unpinned = {name: version for name, version in got.items() if pins.get(name) != version}
    assert not unpinned, f"installed but not at a pin of constraints.txt: {unpinned}"
    check = subprocess.run([str(python), "-m", "pip", "check"], env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    problems = [ln for ln in check.stdout.splitlines() if ln.strip() and canonical(ln.split()[0]) not in no_deps]
    assert not problems, check.stdout + check.stderr


def test_fresh_venv_with_the_readme_command_serves_the_app(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (its Python API only)")
    (command,) = readme_commands("app")
    install, run = split_command(command)
    if not index_reachable(tmp_path / "probe"):
        pytest.skip("no Python package index reachable (pip download failed): cannot install a fresh environment")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = clean_env(venv)
    start = time.time()
    done = subprocess.run(["bash", "-c", install], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT, check=False)
    install_s = time.time() - start
    assert done.returncode == 0, f"the README's install failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    print(f"fresh install: {install_s:.0f} s")  # shown with pytest -rA
    assert_consistent(venv / "bin" / "python", env)
    assert shutil.which("streamlit", path=env["PATH"]) == str(venv / "bin" / "streamlit")

    env.update(FER_WORK_DIR=str(tmp_path / "work"), FER_CACHE_DIR=str(tmp_path / "cache"))
    command = ["bash", "-c", f'{run} "$@"', "bash"]  # the README's words verbatim; the port flags go to "$@"
    with streamlit_server(command, cwd=REPO, env=env, log=tmp_path / "server.log") as url:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_role("heading", name="Facial expression recognition").wait_for()
            page.get_by_role("heading", name="Active model").wait_for()
            page.get_by_test_id("stMetricLabel").get_by_text("Architecture", exact=True).wait_for()
            assert page.title() == "FER: facial expressions"
            assert page.get_by_test_id("stException").count() == 0
            browser.close()
