"""The Dockerfile builds and its image serves the app, built without a Docker daemon by buildah.

Debian's ``buildah`` (``apt-get install -y buildah``) builds the image with ``--isolation chroot``
(no daemon, no OCI runtime needed), then runs it the same way: ``python -m fer predict`` on a real
photo inside the image finds its face, and ``streamlit run app.py`` (the image's command) answers
its health check and serves Home in Chromium. Skipped when buildah is missing, when the base image
``python:3.11-slim`` is neither stored locally nor pullable (the development machine cannot reach
Docker Hub: see docs/deploy.md), or with ``FER_SKIP_IMAGE_TEST=1``. The first build downloads the
pinned wheels (a few minutes); ``--layers`` caches them for later builds.

The build mounts the host's CA bundle and a pip.conf naming it, read-only and for the build only (not
copied into the image), so that pip works behind a TLS-inspecting proxy as it does on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from streamlit_server import free_port, stop, wait_healthy
from test_pins import REPO

BUILDAH = shutil.which("buildah")
BASE = "docker.io/library/python:3.11-slim"
IMAGE = "localhost/fer-app-test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.skipif(BUILDAH is None, reason="no buildah (apt-get install -y buildah)"),
    pytest.mark.skipif(os.environ.get("FER_SKIP_IMAGE_TEST") == "1", reason="FER_SKIP_IMAGE_TEST=1"),
]


def buildah(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([BUILDAH, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"buildah {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def base_image_available() -> str | None:
    """None when the base image is stored or could be pulled, else why not (buildah's last error line)."""
    if buildah("inspect", "--type", "image", BASE, check=False).returncode == 0:
        return None
    pulled = buildah("pull", BASE, timeout=600, check=False)
    return None if pulled.returncode == 0 else (pulled.stderr.strip().splitlines() or ["?"])[-1]


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    why = base_image_available()
    if why:
        pytest.skip(f"base image {BASE} unavailable: {why}")
    mounts = []
    if CA_BUNDLE.is_file():
        conf = tmp_path_factory.mktemp("pip") / "pip.conf"
        conf.write_text(f"[global]\ncert = {CA_BUNDLE}\n")
        mounts = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "--volume", f"{conf}:/etc/pip.conf:ro"]
    start = time.time()
    buildah("bud", "--isolation", "chroot", "--pull=never", "--layers", *mounts, "-t", IMAGE, "-f",
            str(REPO / "Dockerfile"), str(REPO), timeout=1800)
    print(f"image built in {time.time() - start:.0f} s")
    name = buildah("from", "--pull=never", IMAGE).stdout.strip().splitlines()[-1]
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


def test_the_image_finds_the_face_in_a_photo(container):
    done = buildah("run", "--isolation", "chroot", "--volume", f"{REPO / 'tests' / 'data'}:/photos:ro", container,
                   "--", "python", "-m", "fer", "predict", "/photos/astronaut.jpg", "--json", timeout=600)
    (entry,) = json.loads(done.stdout)
    assert len(entry["faces"]) == 1, entry


def test_the_image_serves_the_app(container, tmp_path):
    inspect = json.loads(buildah("inspect", "--type", "image", IMAGE).stdout)
    cmd = inspect["OCIv1"]["config"]["Cmd"]
    assert cmd[:3] == ["streamlit", "run", "app.py"]
    port = free_port()
    # chroot isolation shares the host's network: the server listens on the host's loopback
    args = [*cmd, "--server.address=127.0.0.1", f"--server.port={port}"]
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([BUILDAH, "run", "--isolation", "chroot", container, "--", *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, timeout=240)
        if not Path(CHROMIUM).is_file():
            return
        sync_api = pytest.importorskip("playwright.sync_api")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.set_default_timeout(180_000)
            page.goto(url)
            page.get_by_role("heading", name="Active model").wait_for()
            assert page.get_by_test_id("stException").count() == 0
            browser.close()
    finally:
        stop(proc)
