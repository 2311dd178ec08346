import numpy as np
import pytest

from advgap.data.mnist import mnist_arrays
from advgap.errors import ModelFormatError
from advgap.formats.netfile import save_net
from advgap.formats.nnet import write_nnet
from advgap.formats.onnx_export import save_onnx
from advgap.formats.onnx_import import OnnxReplayer
from advgap.models.bundled import WEIGHTS_DIR
from advgap.models.loader import load_network
from advgap.models.zoo import STUDY_NETS, ZOO_NAMES
from advgap.verify.api import min_linf_distance
from advgap.verify.network import ReluNet
from advgap.verify.result import DistanceStatus

RNG = np.random.default_rng(3)


@pytest.fixture
def net():
    return ReluNet.from_layers(
        [(RNG.normal(size=(4, 3)), RNG.normal(size=4)), (RNG.normal(size=(2, 4)), RNG.normal(size=2))]
    )


def test_onnx_network_replays_through_onnxruntime(shared_dir):
    loaded = load_network(shared_dir / "vnncomp_mnistfc" / "mnist-net_256x2.onnx")
    assert isinstance(loaded.replay, OnnxReplayer)
    x = RNG.uniform(size=784)
    np.testing.assert_allclose(loaded.replay(x), loaded.net.forward(x), atol=1e-4)


@pytest.mark.parametrize("suffix", [".nnet", ".npz"])
def test_other_formats_replay_through_the_relunet(tmp_path, net, suffix):
    path = tmp_path / f"n{suffix}"
    if suffix == ".nnet":
        write_nnet(path, net)
    else:
        save_net(path, net, {})
    loaded = load_network(path)
    x = RNG.uniform(size=3)
    np.testing.assert_array_equal(loaded.replay(x), net.forward(x))


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ModelFormatError, match=r"unsupported network file type '\.h5'"):
        load_network(tmp_path / "n.h5")


@pytest.mark.parametrize("name", STUDY_NETS)
def test_bundled_net_survives_onnx_and_nnet_export_with_the_same_min_delta(tmp_path, shared_dir, name):
    net = load_network(name).net
    save_onnx(tmp_path / "n.onnx", net)
    write_nnet(tmp_path / "n.nnet", net)
    via_onnx, via_nnet = load_network(tmp_path / "n.onnx").net, load_network(tmp_path / "n.nnet").net
    for w, w_onnx, w_nnet in zip(net.weights, via_onnx.weights, via_nnet.weights, strict=True):
        np.testing.assert_array_equal(w_nnet, w)
        np.testing.assert_allclose(w_onnx, w, rtol=1e-6, atol=1e-7)
    images, labels = mnist_arrays("test", shared_dir / "mnist")
    for i in range(2):
        x, label = images[i].reshape(-1).astype(np.float64), int(labels[i])
        results = [min_linf_distance(n, x, label, timeout=60) for n in (net, via_onnx, via_nnet)]
        assert all(r.status is DistanceStatus.EXACT for r in results)
        # same weights, same answer to the tolerance (the search's time-sliced steps may end it at other points)
        assert abs(results[2].upper - results[0].upper) <= 1e-3 + 1e-9
        assert max(r.lower for r in results) <= min(r.upper for r in results) + 1e-6


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_net_is_bundled_with_its_recipe_and_matches_its_onnx_file(name, shared_dir):
    network = load_network(name)
    meta = network.meta
    assert meta["kind"] == ("adversarial" if name.endswith("-adv") else "vanilla")
    assert meta["profile"]["name"] == f"zoo-{name.removesuffix('-adv')}" and meta["train_time_s"] > 0
    assert meta["batches"] == (sum(n for _, n in meta["profile"]["adversarial_stages"]) if meta["kind"] ==
                               "adversarial" else meta["profile"]["vanilla_batches"])
    assert 0.9 < meta["test_accuracy_clean"] <= 1 and 0 <= meta["test_accuracy_fgsm_0.2"] < meta["test_accuracy_clean"]
    images, labels = mnist_arrays("test", shared_dir / "mnist")
    x = images[:200].reshape(200, -1).astype(np.float64)
    assert np.mean(network.net.predict(x) == labels[:200]) > 0.9
    onnx_file = WEIGHTS_DIR / f"{name}.onnx"
    np.testing.assert_allclose(load_network(onnx_file).replay(x[:5]), network.net.forward(x[:5]), rtol=1e-4, atol=1e-4)
