import numpy as np
import pytest

from advgap.errors import ModelFormatError
from advgap.formats.network import load_network
from advgap.formats.nnet import write_nnet
from advgap.formats.onnx_import import OnnxReplayer
from advgap.models.bundled import load_model
from advgap.models.netfile import save_net
from advgap.verify.network import ReluNet

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
    np.testing.assert_array_equal(load_model(path)[0].forward(x), net.forward(x))


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ModelFormatError, match=r"unsupported network file type '\.h5'"):
        load_network(tmp_path / "n.h5")
