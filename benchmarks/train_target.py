"""Training target: LeNet-5 on MNIST 5k, alpha 8, gamma 0.5, against the same network trained dense.

Target: integer (golden model) accuracy within 1.5 points of the dense network's, and at least
4x fewer packed columns than dense columns over the combined layers (conv2, fc1, fc2, fc3; conv1,
the input layer, is not combined).

    python benchmarks/train_target.py [--out build/bench_train] [--seed 0]

Exit status 0 when both targets hold, 1 otherwise. Takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from colcomb.train.run import TrainConfig, run_training

ACCURACY_POINTS = 1.5
COLUMN_RATIO = 4.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("build/bench_train"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-epochs", type=int, default=12, help="epochs of the dense baseline")
    args = p.parse_args(argv)

    quiet = lambda _msg: None  # noqa: E731
    t0 = time.perf_counter()
    dense = run_training(
        TrainConfig(dataset="mnist5k", model="lenet5", dense=True, epochs=args.dense_epochs, seed=args.seed),
        args.out / "dense", log=quiet,
    )
    t1 = time.perf_counter()
    joint = run_training(
        TrainConfig(dataset="mnist5k", model="lenet5", alpha=8, gamma=0.5, seed=args.seed),
        args.out / "joint", log=quiet,
    )
    t2 = time.perf_counter()
    drop = (dense["integer"] - joint["integer"]) * 100
    ratio = joint["combined_columns"] / max(joint["combined_packed_columns"], 1)
    print(f"dense  LeNet-5: float accuracy {dense['float']:.4f}, integer accuracy {dense['integer']:.4f}, "
          f"weights {dense['weights']} ({t1 - t0:.0f} s)")
    print(f"joint  LeNet-5 (alpha 8, gamma 0.5): float accuracy {joint['float']:.4f}, "
          f"integer accuracy {joint['integer']:.4f}, weights {joint['weights']} ({t2 - t1:.0f} s)")
    for r in joint["layers"]:
        print(f"  {r['layer']:6s} {r['shape']:8s} columns {r['columns']:4d} -> packed {r['packed_columns']:4d}"
              f"  utilization {r['utilization_before']:.3f} -> {r['utilization_after']:.3f}"
              + ("" if r["combined"] else "  (not combined)"))
    print(f"integer accuracy drop: {drop:.2f} points (target <= {ACCURACY_POINTS})")
    print(f"combined layers: {joint['combined_columns']} columns -> {joint['combined_packed_columns']} packed "
          f"= {ratio:.2f}x fewer (target >= {COLUMN_RATIO}x)")
    ok = drop <= ACCURACY_POINTS and ratio >= COLUMN_RATIO
    print("target met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
