"""`advgap train`: tiny profile end to end, resume from the checkpoint, bad input gives one error line."""

from __future__ import annotations

import pytest
import torch

from advgap.cli import main
from advgap.models.loader import load_network


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_train_vanilla_then_adversarial(shared_dir, tmp_path, capsys):
    data = ["--data-dir", str(shared_dir / "mnist")]
    van = tmp_path / "van.npz"
    assert main(["train", "vanilla", "--profile", "tiny", "--out", str(van), *data]) == 0
    assert "vanilla (tiny): 40 batches" in capsys.readouterr().out
    assert van.with_suffix(".onnx").is_file()
    adv, again = tmp_path / "adv.npz", tmp_path / "again.npz"
    args = ["train", "adversarial", "--profile", "tiny", "--init", str(van), "--seed", "3", *data]
    ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main([*args, *ckpt, "--out", str(adv)]) == 0
    assert (tmp_path / "ckpt" / "adversarial-tiny-seed3.pt").is_file()
    loaded = load_network(adv)
    net, meta = loaded.net, loaded.meta
    assert meta["kind"] == "adversarial" and meta["seed"] == 3 and meta["init"] == str(van)
    assert 0.0 <= meta["test_accuracy_fgsm_0.2"] <= meta["test_accuracy_clean"] <= 1.0
    assert meta["attack"]["closed_form_gradient"] is True
    assert main([*args, *ckpt, "--out", str(again)]) == 0
    assert (load_network(again).net.weights[0] == net.weights[0]).all()


def test_bad_init_is_one_error_line(tmp_path, capsys):
    assert main(["train", "adversarial", "--profile", "tiny", "--init", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advgap: error:") and "\n" not in err
