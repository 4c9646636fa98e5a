"""Every dependency pinned, the pins installed, and one install recipe shared by README, CI and Docker.

``constraints.txt`` pins the whole resolved environment (runtime and test dependencies, with every
transitive one); the requirement files pin what the project asks for. Installed versions that
drift from the pins fail here, so CI notices.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-nodeps.txt", "requirements-scale.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[\w,-]+\])?==([\w.+!-]+)$")
BLOCK = re.compile(r"<!-- install:(?P<name>[\w-]+) -->\s*```(?:bash|sh)\n(?P<body>.*?)```\s*<!-- /install:(?P=name) -->",
                   re.DOTALL)


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
    return read_pins(REPO / "constraints.txt")


def test_every_requirement_is_pinned_and_agrees_with_the_constraints(constraints):
    for file in REQUIREMENT_FILES:
        pins = read_pins(REPO / file)
        assert pins, file
        for name, version in pins.items():
            assert constraints.get(name) == version, f"{file} pins {name}=={version}, constraints.txt {constraints.get(name)}"
    assert {"tensorflow", "keras", "streamlit", "numpy", "protobuf", "starlette", "setuptools"} <= set(constraints)
    assert "pip" not in constraints


def test_the_pins_are_what_is_installed(constraints):
    """Drift fails CI: every pinned package is installed at exactly its pinned version."""
    drift = {name: (version, installed(name)) for name, version in constraints.items() if installed(name) != version}
    assert not drift, f"installed versions differ from constraints.txt (pinned, installed): {drift}"


def test_no_unpinned_dependency_of_a_pinned_package(constraints):
    """The constraints are closed: every dependency of a pinned package (on this platform) is pinned too;
    the ``--no-deps`` packages' own dependencies are deliberately not installed."""
    from packaging.requirements import Requirement

    no_deps = read_pins(REPO / "requirements-nodeps.txt")
    missing = set()
    for name in set(constraints) - set(no_deps):
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            applies = req.marker is None or req.marker.evaluate({"extra": ""})
            if applies and canonical(req.name) not in constraints:
                missing.add(f"{name} -> {req.name}")
    assert not missing, sorted(missing)


def test_readme_ci_and_docker_install_the_same_way():
    app, tests = readme_commands("app"), readme_commands("tests")
    assert len(app) == 1 and len(tests) == 1
    assert "python -m pip install -r requirements.txt -c constraints.txt" in app[0] and "streamlit run app.py" in app[0]
    assert "python -m pip install -r requirements-dev.txt -c constraints.txt" in tests[0]
    for command in (app[0], tests[0]):
        assert "python -m pip install --no-deps -r requirements-nodeps.txt" in command
    ci = (REPO / ".ci" / "run").read_text()
    assert tests[0].replace("python -m pip install ", "python -m pip install -q ") in ci, "the CI runs the README's test command"
    docker = (REPO / "Dockerfile").read_text()
    assert "pip install -r requirements.txt -c constraints.txt" in docker
    assert "pip install --no-deps -r requirements-nodeps.txt" in docker
    assert re.search(r"^COPY requirements\.txt requirements-nodeps\.txt constraints\.txt \./$", docker, re.MULTILINE)


def test_dockerfile_runs_the_app_as_a_non_root_user_with_a_health_check():
    lines = [ln.strip() for ln in (REPO / "Dockerfile").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    user = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert "EXPOSE 8501" in lines
    health = " ".join(lines[next(i for i, ln in enumerate(lines) if ln.startswith("HEALTHCHECK")):])
    assert "/_stcore/health" in health
    cmd = [ln for ln in lines if ln.startswith("CMD ")][-1]
    assert '"streamlit", "run", "app.py"' in cmd and "--server.address=0.0.0.0" in cmd and "--server.headless=true" in cmd
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".streamlit/secrets.toml", "models/*.run", "tests"} <= set(ignored)
    assert not {"models", "fer", "ui", "app_pages", "app.py", ".streamlit"} & set(ignored)  # what the app needs
