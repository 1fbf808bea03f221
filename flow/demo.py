"""`colcomb demo`: train + pack + evaluate on MNIST 5k, then (optionally) run the packed network
on the simulated systolic array and check it against the golden model.

The demo network is an MLP on 14x14 digits (``mnist5k-14``): its layers chain as plain matrix
products, so the whole network runs on the array with no host im2col, and the small first layer
keeps Verilator time short.

The hardware step is a function ``hardware(manifest_dir, x) -> dict`` taking the packed folder and
a (batch, inputs) int64 array of quantized test images and returning either ``outputs`` (the
(batch, outputs) integers the array produced, compared here with the golden model) or
``matches_golden`` (a simulator that ran its own golden-model scoreboard on every output word),
and optionally ``cycles`` and ``dense_cycles``. Pass one in, or leave ``hardware=None`` for
:func:`verilator_hardware` (``colcomb.sim.runner.simulate``: Amaranth -> Verilog -> Verilator +
cocotb, imported lazily); ``hardware=False`` skips the step.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig

Log = Callable[[str], None]
HardwareRun = Callable[[Path, np.ndarray], dict]
SIMULATOR = ("colcomb.sim.runner", "simulate")


def verilator_hardware(config: HardwareConfig | None = None, dense_baseline: bool = True,
                       log: Log = print) -> HardwareRun | None:
    """A hardware step running ``colcomb.sim.runner.simulate`` on the array of ``config`` (default
    16 x 16, batch 16; None when colcomb.sim has no such entry point). With ``dense_baseline`` the
    uncombined network runs too, for its cycle count."""
    config = config or HardwareConfig(rows=16, cols=16)
    try:
        simulate = getattr(importlib.import_module(SIMULATOR[0]), SIMULATOR[1])
    except (ImportError, AttributeError):
        return None

    def run(manifest_dir: Path, x: np.ndarray) -> dict:
        import tempfile

        from colcomb.packer.manifest import load_manifest, write_manifest
        from colcomb.packer.packed import dense_equivalent

        log(f"simulating {len(x)} images on a {config.rows}x{config.cols} array (Verilator)...")
        res = simulate(manifest_dir, config, inputs=x, check=False)
        out = {"matches_golden": bool(res.passed), "cycles": int(res.cycles),
               "compute_cycles": int(res.compute_cycles), "summary": res.summary}
        if dense_baseline and res.passed:
            with tempfile.TemporaryDirectory() as tmp:
                m = load_manifest(manifest_dir)
                write_manifest([dense_equivalent(la) for la in m.layers], Path(tmp) / "dense", m.meta)
                log("simulating the same network uncombined (dense columns)...")
                dres = simulate(Path(tmp) / "dense", config, inputs=x, check=False)
                if dres.passed:
                    out["dense_cycles"] = int(dres.cycles)
                    out["dense_compute_cycles"] = int(dres.compute_cycles)
        return out

    return run


def run_demo(
    out: str | os.PathLike,
    *,
    dataset: str = "mnist5k-14",
    model: str = "mlp",
    hidden: Sequence[int] = (64,),
    alpha: int = 8,
    gamma: float = 0.5,
    epochs: int = 10,
    rounds: int = 3,
    sparsity: float = 0.8,
    images: int = 16,
    hardware: HardwareRun | bool | None = None,
    log: Log = print,
) -> dict:
    """Train, pack, evaluate (float and integer accuracy, utilization before/after), then run
    ``images`` test images on the hardware (a batch of as many) and compare with the golden model."""
    from colcomb.packer.golden import run_network
    from colcomb.train.evaluate import load_run
    from colcomb.train.integer import quantize_input
    from colcomb.train.run import TrainConfig, run_training

    cfg = TrainConfig(dataset=dataset, model=model, hidden=list(hidden), alpha=alpha, gamma=gamma,
                      epochs=epochs, rounds=rounds, sparsity=sparsity, retrain_epochs=3,
                      final_epochs=4, include_first=True, lr=2e-3, retrain_lr=2e-3)
    report = run_training(cfg, out, log=log)
    for r in report["layers"]:
        log(f"{r['layer']}: utilization {r['utilization_before']:.3f} before combining, "
            f"{r['utilization_after']:.3f} after ({r['columns']} -> {r['packed_columns']} columns)")
    if hardware is False:
        return report
    sim = hardware if callable(hardware) else verilator_hardware(HardwareConfig(rows=16, cols=16, batch=images),
                                                                 log=log)
    if sim is None:
        log(f"hardware step skipped: colcomb.sim has no {'.'.join(SIMULATOR)} entry point")
        return report
    _, data, _, manifest = load_run(out)
    graph = manifest.meta["graph"]
    if any(step["op"] not in ("flatten", "linear") for step in graph):
        raise ColcombError("the hardware demo runs networks of linear layers only (an MLP)")
    x = quantize_input(data.x_test[:images], manifest.meta["input_scale"], manifest.meta["data_bits"])
    x = x.reshape(len(x), -1)
    golden = run_network(manifest.layers, x)
    hw = sim(Path(out) / "packed", x)
    if "outputs" in hw:
        outputs = np.asarray(hw["outputs"])
        if outputs.shape != golden.shape:
            raise ColcombError(f"hardware gave outputs of shape {list(outputs.shape)}, the golden "
                               f"model {list(golden.shape)}")
        bad = int(np.count_nonzero(np.any(outputs != golden, axis=1)))
    else:
        outputs = golden
        bad = 0 if hw.get("matches_golden") else len(x)
    if bad:
        raise ColcombError(f"hardware outputs differ from the golden model on {bad} of {len(x)} images"
                           + (f": {hw['summary']}" if "summary" in hw else ""))
    hw_acc = float(np.mean(outputs.argmax(axis=1) == data.y_test[:images]))
    golden_acc = float(np.mean(golden.argmax(axis=1) == data.y_test[:images]))
    log(f"hardware: {len(x)} images, every output identical to the golden model; "
        f"hardware accuracy: {hw_acc:.4f} (golden accuracy: {golden_acc:.4f})")
    for key, what in (("cycles", "total cycles (streaming in and out included)"),
                      ("compute_cycles", "computing cycles (end of input to first output)")):
        if key in hw:
            dense = hw.get(f"dense_{key}")
            log(f"{what}: {hw[key]}"
                + (f"; dense array: {dense}, {dense / hw[key]:.2f}x more" if dense else ""))
    keys = ("cycles", "dense_cycles", "compute_cycles", "dense_compute_cycles")
    report["hardware"] = {"images": len(x), "accuracy": hw_acc, "matches_golden": True,
                          **{k: hw[k] for k in keys if k in hw}}
    return report
