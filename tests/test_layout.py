"""The layout follows the data flow: a module imports only from its own stage or the stages below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> import name, in flow order from the top (a stage may import only those after it)
STAGES = {
    "flow": "colcomb",
    "train": "colcomb.train",
    "fpga": "colcomb.fpga",
    "sim": "colcomb.sim",
    "hdl": "colcomb.hdl",
    "packer": "colcomb.packer",
    "core": "colcomb.core",
}
RANK = {folder: i for i, folder in enumerate(STAGES)}


def stage_of(module: str) -> str | None:
    """The folder an imported ``colcomb...`` module lives in (``colcomb`` itself: the package root)."""
    if module == "colcomb":
        return None  # the package root: only __version__ and ColcombError live there
    for folder, name in STAGES.items():
        if folder != "flow" and (module == name or module.startswith(name + ".")):
            return folder
    return "flow" if module.startswith("colcomb.") else None


def imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "colcomb":  # from colcomb import train -> colcomb.train
                out += [(node.lineno, f"colcomb.{a.name}") for a in node.names
                        if a.name not in ("__version__", "ColcombError")]
    return [(line, name) for line, name in out if name == "colcomb" or name.startswith("colcomb.")]


def violations(folder: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).glob("*.py")):
        for line, name in imports(path):
            target = stage_of(name)
            if target is not None and RANK[target] < RANK[folder]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({target}/ is above {folder}/)")
    return bad


@pytest.mark.parametrize("folder", list(STAGES))
def test_imports_run_down_the_stages(folder):
    assert violations(folder) == []


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    (tmp_path / "packer").mkdir()
    (tmp_path / "packer" / "bad.py").write_text("def f():\n    from colcomb.hdl.top import Top\n")
    (tmp_path / "packer" / "fine.py").write_text("from colcomb.core.errors import ColcombError\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert violations("packer") == ["packer/bad.py:2 imports colcomb.hdl.top (hdl/ is above packer/)"]


def test_every_package_folder_is_a_stage():
    mapped = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert mapped == set(STAGES)
