"""How the project's modules import each other.

The core package ``fer/`` stays UI-free: no Streamlit, streamlit-webrtc or PyAV import anywhere in it.
Modules talk through public names only (no ``from fer.x import _y``), and no two modules import each
other, directly or round a longer loop (lazy imports inside functions count).
"""

import ast
from pathlib import Path

UI_MODULES = {"streamlit", "streamlit_webrtc", "av"}
ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "fer"
FIRST_PARTY = ("fer", "ui", "app_pages")
PRODUCTION = [ROOT / "app.py", *(f for d in ("fer", "ui", "app_pages", "benchmarks", "scripts")
                                 for f in sorted((ROOT / d).rglob("*.py")))]


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module that ``path`` imports, at any depth (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(path: Path) -> list[str]:
    """``from <first-party module> import _name`` statements of ``path``, as ``module._name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(FIRST_PARTY):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def first_party_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from pkg import submodule`` names the submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in known:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= subs or {node.module}
            if len(subs) < len(node.names):
                out.add(node.module)
    return out - {module_name(path)}


def import_cycles(files: list[Path]) -> list[list[str]]:
    """Every import loop among ``files`` (each found once, as the list of modules round it)."""
    known = {module_name(f) for f in files}
    graph = {module_name(f): sorted(first_party_imports(f, known)) for f in files}
    cycles, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            loop = stack[stack.index(node):]
            if sorted(loop) not in [sorted(c) for c in cycles]:
                cycles.append(loop)
            return
        if node in done:
            return
        for nxt in graph.get(node, []):
            visit(nxt, [*stack, node])
        done.add(node)

    for node in graph:
        visit(node, [])
    return cycles


def test_the_core_package_imports_no_ui_library():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(CORE.parent)): sorted(imported_modules(f) & UI_MODULES) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_the_check_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    import av\n    from streamlit.x import y\n")
    assert imported_modules(f) == {"av", "streamlit"}


def test_modules_import_no_private_names_of_other_modules():
    assert len(PRODUCTION) > 40
    offenders = {str(f.relative_to(ROOT)): private_imports(f) for f in PRODUCTION}
    assert {f: names for f, names in offenders.items() if names} == {}


def test_the_private_import_check_finds_one(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from fer.training import TrainConfig\n\ndef g():\n    from fer.modelfile import _gpu_names\n"
                 "    from os import _exit\n")
    assert private_imports(f) == ["fer.modelfile._gpu_names"]


def test_no_module_imports_one_that_imports_it_back():
    assert import_cycles(PRODUCTION) == []


def test_the_cycle_check_finds_a_lazy_loop(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "fer").mkdir()
    files = [tmp_path / "fer" / n for n in ("__init__.py", "a.py", "b.py", "c.py")]
    files[0].write_text("")
    files[1].write_text("from fer.b import x\n")
    files[2].write_text("def f():\n    from fer import c\n")
    files[3].write_text("import fer.a\n")
    assert import_cycles(files) == [["fer.a", "fer.b", "fer.c"]]
