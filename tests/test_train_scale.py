"""Training at scale: --resume after an interruption, --device, data-parallel runs under torchrun
(gloo on CPUs), the progress bar."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from cifar_files import write_cifar

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.train.run import TrainConfig, run_training

TINY_RESNET = dict(dataset="cifar10", model="resnet20", width=2, alpha=4, gamma=0.5, epochs=2, rounds=2,
                   retrain_epochs=1, final_epochs=1, sparsity=0.5, lr=0.01, batch_size=32, calib_samples=50,
                   layer_alpha={"block4.conv2": 2})


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread than on a shared, busy CPU's several."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Interrupt(KeyboardInterrupt):
    pass


def _stop_at(pattern: str):
    def log(msg: str) -> None:
        if re.search(pattern, msg):
            raise Interrupt(msg)
    return log


def test_resume_after_interruptions_ends_where_an_uninterrupted_run_ends(tmp_path, capsys):
    data = write_cifar(tmp_path / "cifar", train=160, test=60)
    cfg = TrainConfig(**TINY_RESNET, data_dir=str(data))
    whole = run_training(cfg, tmp_path / "whole", log=lambda _m: None, device="cpu")

    run = tmp_path / "run"
    with pytest.raises(Interrupt):  # stopped after the first dense epoch
        run_training(cfg, run, log=_stop_at(r"^  epoch 1/2"), device="cpu")
    ck = torch.load(run / "model.pt", weights_only=True)
    assert ck["progress"] == {"stage": 0, "epochs": 1, "finished": False} and ck["optimizer"] is not None
    assert not (run / "packed").exists()
    with pytest.raises(Interrupt):  # stopped right after round 2's combining
        run_training(None, run, log=_stop_at(r"^round 2/2: magnitude"), resume=True, device="cpu")
    ck = torch.load(run / "model.pt", weights_only=True)
    assert ck["progress"] == {"stage": 2, "epochs": 0, "finished": False}
    assert len(ck["history"]) == 2 and "score" in ck["history"][0]

    code = main(["train", "--resume", "--device", "cpu", "--out", str(run)])
    out = capsys.readouterr().out
    assert code == 0 and "resuming: stage 2 (round), 0 epoch(s) done" in out
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(run / "model.pt", weights_only=True)
    assert b["progress"]["finished"] and b["optimizer"] is None
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert a["groups"] == b["groups"] and a["history"] == b["history"]
    report = json.loads((run / "report.json").read_text())
    assert report["float"] == whole["float"] and report["integer"] == whole["integer"]
    assert report["model"] == "resnet20" and report["combined_packed_columns"] < report["combined_columns"]
    alphas = {r["layer"]: r["alpha"] for r in report["layers"]}
    assert alphas["block4.conv2"] == 2 and alphas["block4.conv1"] == 4 and alphas["conv1"] == 1
    # the manifest holds the residual graph and evaluate reads it back unchanged
    assert main(["evaluate", str(run)]) == 0
    assert f"integer accuracy: {whole['integer']:.4f}" in capsys.readouterr().out


def test_resume_of_a_finished_run_exports_again(tmp_path, capsys):
    argv = ["train", "--dataset", "digits", "--model", "mlp", "--hidden", "16", "--epochs", "1", "--rounds", "1",
            "--retrain-epochs", "1", "--final-epochs", "0", "--device", "cpu", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    first = json.loads((tmp_path / "r" / "report.json").read_text())
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(tmp_path / "r")]) == 0
    assert "training finished; exporting again" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == first


def test_train_option_errors(tmp_path, capsys):
    code = main(["train", "--resume", "--out", str(tmp_path / "none")])
    assert code == 2 and "no model.pt to resume" in capsys.readouterr().err
    code = main(["train", "--out", str(tmp_path / "x")])
    assert code == 2 and "name the --dataset and the --model" in capsys.readouterr().err
    if not torch.cuda.is_available():
        argv = ["train", "--dataset", "digits", "--model", "mlp", "--device", "cuda", "--out", str(tmp_path / "c")]
        code = main(argv)
        assert code == 2 and "torch sees no CUDA GPU" in capsys.readouterr().err


def test_device_setup_refuses_unknown_devices():
    from colcomb.train.distributed import setup

    with pytest.raises(ColcombError, match="unknown device 'tpu'"):
        setup("tpu")
    rt = setup("cpu")
    assert rt.device.type == "cpu" and rt.main and not rt.distributed


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    from colcomb.train import joint

    monkeypatch.setattr(joint, "_show_progress", lambda _rt: True)
    x = torch.rand(40, 1, 4, 4).numpy()
    y = (torch.arange(40) % 2).numpy()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    joint.fit_classifier(model, x, y, epochs=1, batch_size=8)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "/5 [00:0" in err  # tqdm: five batches, elapsed<ETA
    monkeypatch.undo()
    joint.fit_classifier(model, x, y, epochs=1, batch_size=8)  # pytest's stderr is no terminal
    assert capsys.readouterr().err == ""


FAST_MLP = ["--dataset", "digits", "--model", "mlp", "--hidden", "32", "--alpha", "4", "--epochs", "4", "--rounds",
            "1", "--retrain-epochs", "1", "--final-epochs", "1", "--lr", "0.01", "--sparsity", "0.5", "--device", "cpu"]


def test_two_gloo_processes_reach_the_accuracy_of_one(tmp_path):
    """torchrun --nproc-per-node 2 on CPUs (gloo): each rank trains on half of every minibatch,
    rank 0 combines and broadcasts, only rank 0 writes; same accuracy as one process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "colcomb.cli", "train", *FAST_MLP, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "colcomb.cli", "train", *FAST_MLP, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    assert "(cpu, 2 processes)" in two.stdout
    assert two.stdout.count("integer accuracy:") == 1  # rank 1 neither logs nor evaluates
    r1 = json.loads((tmp_path / "one" / "report.json").read_text())
    r2 = json.loads((tmp_path / "two" / "report.json").read_text())
    assert abs(r1["float"] - r2["float"]) <= 0.005 and abs(r1["integer"] - r2["integer"]) <= 0.005
    assert r2["float"] > 0.8
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == [".colcomb-output.json", "model.pt", "packed", "report.json"]
