"""The core package ``fer/`` stays UI-free: no Streamlit, streamlit-webrtc or PyAV import anywhere in it."""

import ast
from pathlib import Path

UI_MODULES = {"streamlit", "streamlit_webrtc", "av"}
CORE = Path(__file__).resolve().parent.parent / "fer"


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module that ``path`` imports, at any depth (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_package_imports_no_ui_library():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(CORE.parent)): sorted(imported_modules(f) & UI_MODULES) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_the_check_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    import av\n    from streamlit.x import y\n")
    assert imported_modules(f) == {"av", "streamlit"}
