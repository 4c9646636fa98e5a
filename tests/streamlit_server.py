"""``streamlit run`` on a free loopback port, started and stopped in one place.

Used by the browser tests (``tests/e2e``), the fresh-install test and ``benchmarks/load_test.py``::

    with streamlit_server(app_command(), cwd=REPO, env=env, log=tmp / "server.log") as url:
        ...  # url is http://127.0.0.1:PORT, healthy
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path


def app_command() -> list[str]:
    """``streamlit run app.py`` with this interpreter, headless."""
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, log: Path | None = None,
                 timeout: float = 180) -> None:
    """Until ``url/_stcore/health`` answers ok; RuntimeError (with the log's tail) if ``proc`` ends or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"the app at {url} did not become healthy: {tail}")


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextlib.contextmanager
def streamlit_server(command: list[str], *, cwd: Path, env: Mapping[str, str], log: Path,
                     timeout: float = 180) -> Iterator[str]:
    """Run ``command`` + ``--server.port PORT --server.address 127.0.0.1``; yield its URL once healthy; stop it."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, "--server.port", str(port), "--server.address", "127.0.0.1"],
                                cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, timeout)
        yield url
    finally:
        stop(proc)
