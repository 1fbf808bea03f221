"""`colcomb simulate --stall P --idle P`: the stream back-pressure and idle cycles of the bench,
from the command line, on a design that tiles in both directions."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from hw_layers import random_layer

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.packer.manifest import write_manifest
from colcomb.sim.runner import simulate

ROOT = Path(os.environ.get("COLCOMB_SIM_BUILD", Path(__file__).parents[1] / "build" / "sim"))


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory):
    rng = np.random.default_rng(31)
    layers = [random_layer(rng, 7, 10, 4, gamma=0.25, name="h", activation="relu"),
              random_layer(rng, 5, 7, 2, name="o")]
    folder = tmp_path_factory.mktemp("bp") / "net"
    write_manifest(layers, folder)
    return folder


def _simulate(folder, capsys, *extra) -> int:
    """Run the CLI; return the cycle count it printed."""
    assert main(["simulate", str(folder), "--rows", "3", "--cols", "2", "--batch", "4",
                 "--vectors", "10", "--build-dir", str(ROOT), *extra]) == 0
    out = capsys.readouterr().out
    assert "vectors checked: 10 (50 output words, all equal to the golden model)" in out
    return int(re.search(r"cycles: (\d+)", out).group(1))


@pytest.mark.rtl
def test_heavy_stalls_on_both_streams_stay_bit_exact(two_layers, capsys):
    plain = _simulate(two_layers, capsys)
    stalled = _simulate(two_layers, capsys, "--stall", "0.85", "--idle", "0.8", "--seed", "4")
    # the options reach the streams: 10 x 10 input words at about 1 in 5 cycles alone take about
    # 500 cycles, while the plain run receives, computes and sends in about 300
    assert stalled > 400 and stalled > 1.5 * plain


@pytest.mark.rtl
def test_the_largest_stall_allowed_passes_on_correct_hardware(two_layers, capsys):
    """At 0.999 a word waits 1,000 cycles on average: the watchdog stretches its budget as much
    (it stopped at 20x before, and reported a protocol violation on correct hardware)."""
    plain = _simulate(two_layers, capsys)
    stalled = _simulate(two_layers, capsys, "--stall", "0.999", "--seed", "2")
    assert stalled > 50 * plain


@pytest.mark.parametrize("value", ["1", "0.9995", "1.5", "-0.1", "x"])
@pytest.mark.parametrize("option", ["--stall", "--idle"])
def test_probabilities_outside_0_1_are_refused(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(tmp_path), "--rows", "2", "--cols", "2", option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and ("[0, 0.999]" in err or "not a number" in err)


def test_api_refuses_a_probability_of_one_before_building(tmp_path):
    with pytest.raises(ColcombError, match=r"stall must be a probability in \[0, 0.999\]"):
        simulate(tmp_path / "nowhere", HardwareConfig(rows=2, cols=2), stall=1.0)
