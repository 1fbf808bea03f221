"""The hardware config: validation naming the field, the JSON form, the CLI's flags over a config
file, the board's defaults, and that the flow's functions take the config rather than its options."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from colcomb.cli import build_parser, main
from colcomb.core.errors import ColcombError
from colcomb.fpga.boards import board_config
from colcomb.hdl.config import CONFIG_FIELDS, ConfigError, HardwareConfig
from colcomb.hwflags import FLAGS, config_from_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("field", "value"), [
    ("rows", 0), ("cols", -2), ("batch", 1.5), ("cell", "systolic"), ("dsp", "yes"), ("beat", 3), ("beat", 0),
    ("pass_vectors", 0), ("cell_memory", "flash"), ("requant_stages", 4), ("requant_stages", True),
    ("shadow", 1), ("clock_mhz", -5.0), ("clock_mhz", float("nan")), ("board", ""),
])
def test_a_bad_value_is_refused_naming_its_field_and_quoting_it(field, value):
    with pytest.raises(ConfigError) as err:
        HardwareConfig(**{field: value})
    assert err.value.field == field
    assert field in str(err.value) and repr(value) in str(err.value)


def test_the_json_form_round_trips(tmp_path):
    config = HardwareConfig(rows=8, cols=4, cell="serial", dsp=True, batch=1, pass_vectors=64, cell_memory="spram",
                            requant_stages=3, clock_mhz=22, board="icebreaker")
    path = config.save(tmp_path / "c.json")
    assert HardwareConfig.load(path) == config
    assert json.loads(path.read_text())["clock_mhz"] == 22.0


@pytest.mark.parametrize(("text", "message"), [
    ('{"rows": 8, "colls": 4}', "unknown field 'colls'"),
    ('{"rows": 8, "rows": 4}', "appears more than once"),
    ('{"rows": 8,', "not a JSON hardware config"),
    ('[8, 4]', "a JSON object"),
    ('{"format": "something-else"}', "not a colcomb hardware config"),
    ('{"cell": "systolic"}', "cell must be one of"),
])
def test_a_malformed_config_file_is_refused_with_its_path(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ColcombError, match=message) as err:
        HardwareConfig.load(path)
    assert str(path) in str(err.value)


def test_flags_override_the_config_file_and_the_rest_is_kept(tmp_path):
    path = HardwareConfig(rows=8, cols=4, cell="serial", batch=1, board="icebreaker").save(tmp_path / "c.json")
    args = build_parser().parse_args(["generate", "m", "--config", str(path), "--cols", "2", "--no-dsp",
                                      "--out", "o"])
    config = config_from_args(args)
    assert (config.rows, config.cols, config.cell, config.batch, config.dsp) == (8, 2, "serial", 1, False)
    assert config.board == "icebreaker"


def test_every_field_has_a_flag_that_sets_it():
    parser = build_parser()
    args = parser.parse_args(["simulate", "m", "--rows", "3", "--cols", "5", "--cell", "serial", "--dsp",
                              "--batch", "2", "--beat", "2", "--pass-vectors", "32", "--cell-memory", "spram",
                              "--requant-stages", "3", "--shadow", "--clock", "20", "--board", "icebreaker"])
    config = config_from_args(args)
    assert config == HardwareConfig(rows=3, cols=5, cell="serial", dsp=True, batch=2, beat=2, pass_vectors=32,
                                    cell_memory="spram", requant_stages=3, shadow=True, clock_mhz=20.0,
                                    board="icebreaker")
    assert set(FLAGS) == set(CONFIG_FIELDS)


def test_the_cli_names_the_flag_of_a_bad_field(tiny_manifest, tmp_path, capsys):
    assert main(["generate", str(tiny_manifest), "--rows", "0", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "--rows" in err and "not 0" in err
    assert not (tmp_path / "g").exists()


def test_the_board_fills_in_dsp_use_and_refuses_what_it_cannot_build():
    assert board_config(HardwareConfig(board="icebreaker"))[1].dsp is True  # 8 SB_MAC16
    assert board_config(HardwareConfig(board="ulx3s"))[1].board == "ulx3s-85f"
    assert board_config(HardwareConfig(board="icestick"))[1].dsp is False  # an HX1K has none
    assert board_config(HardwareConfig(board="icebreaker", dsp=False))[1].dsp is False
    with pytest.raises(ColcombError, match="unknown board 'nexys'"):
        board_config(HardwareConfig(board="nexys"))
    with pytest.raises(ConfigError, match="iCE40 UltraPlus") as err:
        board_config(HardwareConfig(board="ulx3s-85f", cell_memory="spram"))
    assert err.value.field == "cell_memory"
    with pytest.raises(ConfigError, match="names no board"):
        board_config(HardwareConfig())


#: modules of the flow (compile, generate, simulate, synthesize, report, estimate, explore) whose
#: public functions take a :class:`HardwareConfig`, never one of its options one by one
FLOW_MODULES = ["hdl/generate.py", "sim/runner.py", "sim/amaranth_sim.py", "fpga/synth.py", "fpga/cost.py",
                "fpga/estimate.py", "fpga/explore.py", "fpga/explore_report.py", "flow/demo.py"]


#: the steps every option reaches through the config alone
ENTRY_POINTS = {"hdl/program.py": ["compile"], "hdl/generate.py": ["generate", "generate_layers"],
                "sim/runner.py": ["build", "simulate"], "fpga/synth.py": ["prepare_design", "synthesize",
                                                                         "measure_cycles_per_inference"],
                "fpga/cost.py": ["cost_report"], "fpga/estimate.py": ["estimate", "estimate_program"]}


def _functions(rel: str):
    for node in ast.walk(ast.parse((ROOT / rel).read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, {a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs}


def test_the_flow_takes_a_config_and_none_of_its_options_one_by_one():
    offenders, missing = [], []
    for rel in sorted(set(FLOW_MODULES) | set(ENTRY_POINTS)):
        for node, names in _functions(rel):
            if node.name in ENTRY_POINTS.get(rel, ()) and "config" not in names:
                missing.append(f"{rel}:{node.name}")
            if "config" in names or node.name in ENTRY_POINTS.get(rel, ()):
                offenders += [f"{rel}:{node.name}({name})" for name in sorted(names & set(CONFIG_FIELDS))]
    assert missing == [] and offenders == []


def test_a_design_folder_carries_its_config_and_refuses_a_changed_manifest(tiny_manifest, tmp_path, capsys):
    from colcomb.hdl.design_folder import load_design_folder

    out = tmp_path / "design"
    assert main(["generate", str(tiny_manifest), "--rows", "3", "--cols", "2", "--batch", "5", "--no-lint",
                 "--tb-vectors", "0", "--out", str(out)]) == 0
    design = load_design_folder(out)
    assert (design.config.rows, design.config.cols, design.config.batch) == (3, 2, 5)
    assert design.manifest == tiny_manifest.resolve()
    capsys.readouterr()
    # flags that change the compiled design are refused beside a design folder
    assert main(["estimate", str(out), "--rows", "4"]) == 2
    assert "is a generated design" in capsys.readouterr().err
    # the manifest edited after generate: the folder is refused
    path = tiny_manifest / "manifest.json"
    path.write_text(path.read_text().replace('"tiny"', '"tiny2"', 1))
    with pytest.raises(ColcombError, match="changed since this design was generated"):
        load_design_folder(out)
