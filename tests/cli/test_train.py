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
    assert "vanilla 784-16-10 (tiny): 40 batches" in capsys.readouterr().out
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


@pytest.fixture
def tiny_zoo(monkeypatch):
    """Two zoo nets with tiny profiles: a two-hidden-layer MLP and ConvSmall."""
    from advgap.cli import train
    from advgap.models.profile import Profile
    from advgap.models.zoo import ZooNet

    zoo = (
        ZooNet("mlp-8x2", Profile("t-mlp", 30, ((0.3, 10), (0.1, 10)), hidden=(8, 8), attack_steps=3)),
        ZooNet("conv-small", Profile("t-conv", 20, ((0.3, 5), (0.1, 5)), arch="conv-small", attack_steps=3)),
    )
    monkeypatch.setattr(train, "ZOO", zoo)
    monkeypatch.setattr(train, "zoo_net", lambda name: next(n for n in zoo if n.name == name))
    return zoo


def test_train_zoo_writes_each_net_twice_with_its_recipe_and_resumes(tiny_zoo, shared_dir, tmp_path, capsys):
    out = tmp_path / "zoo"
    argv = ["train", "zoo", "--out-dir", str(out), "--data-dir", str(shared_dir / "mnist")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("wrote") == 4
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "conv-small-adv.onnx", "conv-small.onnx", "mlp-8x2-adv.npz", "mlp-8x2-adv.onnx", "mlp-8x2.npz",
        "mlp-8x2.onnx"]
    conv = load_network(out / "conv-small-adv.onnx")
    assert conv.net.hidden_sizes == (2704, 800, 100)  # the conv layers as the verifier sees them
    assert conv.meta["kind"] == "adversarial" and conv.meta["init"] == "conv-small"
    assert conv.meta["architecture"] == "conv 16x4x4/2, conv 32x4x4/2, dense 100, dense 10"
    assert conv.meta["profile"]["arch"] == "conv-small" and conv.meta["batches"] == 10
    assert conv.meta["attack"]["closed_form_gradient"] is False
    mlp_onnx, mlp_npz = load_network(out / "mlp-8x2-adv.onnx"), load_network(out / "mlp-8x2-adv.npz")
    assert mlp_onnx.meta == mlp_npz.meta and mlp_npz.meta["architecture"] == "784-8-8-10"
    assert (out / "conv-small-adv.onnx").stat().st_size < 1_000_000  # its own layers, not the dense matrices
    before = mlp_npz.net
    (out / "mlp-8x2-adv.npz").unlink()
    assert main(argv) == 0  # resumes: only the missing file is written again, from the checkpoints
    assert capsys.readouterr().out.count("wrote") == 1
    again = load_network(out / "mlp-8x2-adv.npz").net
    assert all((a == b).all() for a, b in zip(again.weights, before.weights, strict=True))


@pytest.mark.parametrize("extra", [["--profile", "tiny"], ["--init", "vanilla"], ["--out", "x.npz"],
                                   ["--nets", "mlp-1000x9"]])
def test_train_zoo_refuses_study_options_and_unknown_nets(extra, tmp_path, capsys):
    assert main(["train", "zoo", "--out-dir", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advgap: error:") and "\n" not in err
