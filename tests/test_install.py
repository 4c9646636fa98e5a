"""What a host does: a new virtual environment, exactly the README's install, then the CLI and the app.

The install command is read from README.md (the ``<!-- install:app -->`` block: ``pip install -r
requirements.txt``, what Streamlit Community Cloud, Hugging Face Spaces and the Dockerfile run) and run
verbatim with the new environment first on PATH. Then, from that environment: ``python -m fer predict``
finds the face in a real photo (the CenterFace weights ship in fer/assets, nothing else is fetched);
``pip install -e .`` adds the ``fer`` command, which answers the same; and ``streamlit run app.py``
serves Home and Analyze photos in Debian's Chromium, with the face found. The wheels come from pip's
cache when an earlier install (CI's own ``pip install``) filled it, so mostly unpacking costs time.
Skipped when no package index is reachable, when this is not the README's Python (3.11), or without
Chromium and Playwright; ``FER_SKIP_INSTALL_TEST=1`` skips it on purpose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamlit_server import streamlit_server
from test_pins import REPO, canonical, read_pins, readme_commands

CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
INSTALL_TIMEOUT = 1500  # seconds; 3-10 min measured (docs/deploy.md)
PHOTO = REPO / "tests" / "data" / "astronaut.jpg"  # one face, 512x512 (tests/data/README.md)

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
    tqdm = read_pins(REPO / "requirements.txt")["tqdm"]
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
    """What got installed is requirements.txt, exactly: every pin at its version, nothing else, ``pip check`` clean."""
    pins = read_pins(REPO / "requirements.txt")
    freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], env=env, capture_output=True, text=True,
                            timeout=300, check=True).stdout
    got = {canonical(name): version for name, _, version in (ln.partition("==") for ln in freeze.split()) if version}
    got.pop("pip", None)
    assert got == pins, {"not at its pin": {n: v for n, v in got.items() if pins.get(n) != v},
                         "pinned, not installed": sorted(set(pins) - set(got))}
    check = subprocess.run([str(python), "-m", "pip", "check"], env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def predict(argv: list[str], env: dict[str, str]) -> list[dict]:
    """``predict --json`` on the test photo, run from the fresh environment in the repository."""
    done = subprocess.run([*argv, "predict", str(PHOTO), "--json"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, f"{argv} predict failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def test_fresh_venv_with_the_readme_command_finds_faces_in_the_cli_and_the_app(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (its Python API only)")
    (command,) = readme_commands("app")
    install, run = split_command(command)
    assert install == "pip install -r requirements.txt", "the host's install: the lock and nothing else"
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
    python = venv / "bin" / "python"
    assert_consistent(python, env)
    assert shutil.which("streamlit", path=env["PATH"]) == str(venv / "bin" / "streamlit")

    env.update(FER_WORK_DIR=str(tmp_path / "work"), FER_CACHE_DIR=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="2")
    (entry,) = predict([str(python), "-m", "fer"], env)
    assert entry["file"].endswith(PHOTO.name) and len(entry["faces"]) == 1, entry
    face = entry["faces"][0]
    x, y, w, h = face["box"]
    assert 150 <= x + w / 2 <= 250 and 50 <= y + h / 2 <= 160 and 60 <= w <= 200, face["box"]  # her face
    assert face["emotion"] in face["scores"] and len(face["scores"]) == 7

    # pyproject.toml's console script, installed the way the README says: `fer predict` is `python -m fer predict`
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", "."],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert shutil.which("fer", path=env["PATH"]) == str(venv / "bin" / "fer")
    (again,) = predict(["fer"], env)
    assert again["faces"] == entry["faces"]

    command = ["bash", "-c", f'{run} "$@"', "bash"]  # the README's words verbatim; the port flags go to "$@"
    log = tmp_path / "server.log"
    with streamlit_server(command, cwd=REPO, env=env, log=log) as url:
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

            page.goto(f"{url}/analyze")
            page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(PHOTO))
            caption = page.get_by_text(re.compile(r"\d+×\d+ px · \d+ face\(s\)"))
            caption.wait_for(timeout=300_000)
            assert caption.inner_text() == "512×512 px · 1 face(s)", log.read_text()[-3000:]
            card = page.get_by_text(re.compile(r"^(angry|disgust|fear|happy|sad|surprise|neutral) · \d+%"))
            card.wait_for()  # the face's card: its emotion and score
            assert page.get_by_test_id("stException").count() == 0
            browser.close()
