"""MaxPool as exact ReLU layers: onnxruntime agreement everywhere, torch exports, and the engine on the encoding."""

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from advgap.cli import main
from advgap.errors import ModelFormatError
from advgap.formats.onnx_import import load_onnx, onnx_to_relunet
from advgap.verify.api import min_linf_distance
from advgap.verify.bounds import backward_lower, crown_bounds
from support.milp_reference import milp_min_distance

RNG = np.random.default_rng(7)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def model_of(nodes, inits, in_shape, out_rank=4, opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"d{i}" for i in range(out_rank)])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def save(tmp_path, nodes, inits, in_shape, out_rank=4):
    path = tmp_path / "m.onnx"
    onnx.save(model_of(nodes, inits, in_shape, out_rank), str(path))
    return path


def assert_exact_everywhere(model, low=-2.0, high=2.0):
    """The ReluNet equals onnxruntime on inputs of both signs, not only on the [0, 1] box load_onnx checks."""
    xs = RNG.uniform(low, high, size=(16, model.net.n_inputs))
    np.testing.assert_allclose(model.net.forward(xs), model.replayer(xs), rtol=1e-5, atol=1e-5)


def conv_pool(pool_attrs, relu=True, channels=2, kernel=(2, 2), op="MaxPool"):
    nodes = [helper.make_node("Conv", ["x", "k", "b"], ["c"], name="conv")]
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
    nodes.append(helper.make_node(op, ["r" if relu else "c"], ["y"], name="pool", **pool_attrs))
    inits = [const("k", RNG.normal(size=(channels, 1, *kernel))), const("b", RNG.normal(scale=0.3, size=channels))]
    return nodes, inits


POOLS = [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [0, 1, 2, 0]},
    {"kernel_shape": [2, 2], "strides": [1, 1], "dilations": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [1, 1], "strides": [2, 2]},
]
POOL_IDS = ["2x2", "3x3-pads-overlap", "asymmetric", "dilated", "ceil-partial", "same-upper", "1x1"]


@pytest.mark.parametrize("attrs", POOLS, ids=POOL_IDS)
@pytest.mark.parametrize("relu", [True, False], ids=["after-relu", "on-conv"])
def test_max_pool_matches_onnxruntime_everywhere(tmp_path, attrs, relu):
    nodes, inits = conv_pool(attrs, relu)
    model = load_onnx(save(tmp_path, nodes, inits, [1, 1, 8, 7]))
    assert_exact_everywhere(model)


def test_max_pool_on_the_input_and_global_max_pool(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalMaxPool", ["p"], ["y"], name="global")]
    model = load_onnx(save(tmp_path, nodes, [], [1, 2, 4, 6]))
    assert model.net.n_outputs == 2
    assert_exact_everywhere(model)


def test_one_dimensional_max_pool_after_gemm_carries_values(tmp_path):
    """Few pooled values of a dense layer: passing the values through is cheaper than passing its 30 inputs."""
    w, b = RNG.normal(size=(6, 30)), RNG.normal(size=6)
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc", transB=1),
        helper.make_node("Reshape", ["h", "shape"], ["s"], name="reshape"),
        helper.make_node("MaxPool", ["s"], ["y"], name="pool", kernel_shape=[3], strides=[3]),
    ]
    inits = [const("W", w), const("b", b), numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "shape")]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 30], out_rank=3))
    # level 1: 2 differences, per window the paired b and the unpaired third value as relu(v), relu(-v);
    # level 2: 2 differences, the unpaired value's two halves passed on (non-negative ReLU outputs)
    assert model.net.hidden_sizes == (2 + 2 * 4, 2 + 4)
    assert_exact_everywhere(model)


def test_max_tree_layers_and_stable_pass_throughs(tmp_path):
    """A 2x2 pool after a ReLU: two levels; every pass-through neuron is stable on any box, so bounds lose
    nothing there."""
    nodes, inits = conv_pool({"kernel_shape": [2, 2], "strides": [2, 2]}, channels=1)
    net = load_onnx(save(tmp_path, nodes, inits, [1, 1, 5, 5])).net
    assert net.hidden_sizes == (16, 4 * (2 + 2), 4 * (1 + 1))  # conv ReLUs; 4 windows × (diffs + pass-throughs)
    x = RNG.uniform(size=net.n_inputs)
    bounds = crown_bounds(net, np.clip(x - 0.3, 0, 1), np.clip(x + 0.3, 0, 1))
    for k in (1, 2):
        pass_through = slice(net.hidden_sizes[k] // 2, None)  # after the differences
        assert np.all(bounds.lower[k][pass_through] >= 0)


def test_engine_bounds_on_the_encoding_contain_the_exact_range(tmp_path):
    """Sound bounds on the max tree: on random boxes, CROWN's bounds on the pooled values (the net's outputs)
    contain every sampled value and the exact maximum, max over the window of its ReLUs' maxima."""
    nodes, inits = conv_pool({"kernel_shape": [2, 2], "strides": [2, 2]})
    net = load_onnx(save(tmp_path, nodes, inits, [1, 1, 5, 5])).net
    window_of = np.arange(32).reshape(2, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(8, 4)  # channel, rows, cols
    last, eye = len(net.weights) - 1, np.eye(net.n_outputs)
    for _ in range(10):
        x, eps = RNG.uniform(size=25), RNG.uniform(0.02, 0.3)
        lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
        bounds = crown_bounds(net, lo, hi)
        lower = backward_lower(net, bounds, eye, last, lo, hi)
        upper = -backward_lower(net, bounds, -eye, last, lo, hi)
        conv_max = np.maximum(bounds.upper[0], 0)  # layer 0 is the convolution: its box bounds are exact
        samples = net.forward(RNG.uniform(lo, hi, size=(2000, 25)))
        assert np.all(samples >= lower - 1e-9) and np.all(samples <= upper + 1e-9)
        assert np.all(conv_max[window_of].max(axis=1) <= upper + 1e-9)


def test_max_pool_on_the_input_passes_inputs_through(tmp_path):
    """Pool windows of a convolution of the input: the inputs themselves cross the layers (relu(x), relu(−x)),
    stable on every box of non-negative inputs."""
    nodes, inits = conv_pool({"kernel_shape": [2, 2], "strides": [2, 2]}, relu=False, channels=3)
    net = load_onnx(save(tmp_path, nodes, inits, [1, 1, 5, 5])).net
    bounds = crown_bounds(net, np.zeros(25), np.full(25, 0.7))
    n_pairs = 3 * 4 * 2  # and 24 values of unknown sign to pass, as 48 neurons (counting 96) or 2 per input
    pass_through = net.weights[0][n_pairs:]
    assert len(pass_through) <= 2 * 25
    assert np.all(np.sort(np.abs(pass_through), axis=1)[:, -2:] == [0, 1])  # one ±1 per row: an input
    assert np.all((bounds.lower[0][n_pairs:] >= 0) | (bounds.upper[0][n_pairs:] <= 0))


def test_refusals_name_the_node(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pad3", kernel_shape=[2, 2], pads=[2, 2, 0, 0])]
    with pytest.raises(ModelFormatError, match=r"^m\.onnx: node 'pad3' \(MaxPool\): a window lies entirely in the "
                                                r"padding$"):
        onnx_to_relunet(model_of(nodes, [], [1, 1, 4, 4]), "m.onnx")
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "idx"], name="argmax", kernel_shape=[2, 2]),
             helper.make_node("Cast", ["idx"], ["z"], name="cast", to=TensorProto.FLOAT)]
    with pytest.raises(ModelFormatError, match=r"node 'argmax' \(MaxPool\): only its first output is supported"):
        onnx_to_relunet(model_of(nodes, [], [1, 1, 4, 4]), "m.onnx")


def export(net, in_shape, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation; the new one needs onnxscript
        torch.onnx.export(net, torch.zeros(1, *in_shape), str(path), dynamo=False, input_names=["x"])
    return path


@pytest.mark.parametrize(
    "pool",
    [
        lambda: torch.nn.MaxPool2d(2),
        lambda: torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        lambda: torch.nn.MaxPool2d(2, stride=1, dilation=2),
        lambda: torch.nn.AvgPool2d(2),
        lambda: torch.nn.Sequential(torch.nn.ZeroPad2d((0, 1, 1, 0)), torch.nn.AvgPool2d(3, stride=2, padding=1)),
    ],
    ids=["max", "max-pad-ceil", "max-dilated", "avg", "zeropad-avg-pad"],
)
def test_torch_exports_of_pooling_nets_match_torch(tmp_path, pool):
    torch.manual_seed(3)
    features = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 2), torch.nn.ReLU(), pool(), torch.nn.Flatten())
    width = features(torch.zeros(1, 1, 8, 8)).shape[1]
    net = torch.nn.Sequential(*features, torch.nn.Linear(width, 4)).double()
    model = load_onnx(export(net.float(), (1, 8, 8), tmp_path / "net.onnx"))
    xs = RNG.uniform(size=(8, 64))
    with torch.no_grad():
        expected = net.double()(torch.from_numpy(xs).reshape(-1, 1, 8, 8)).numpy()
    np.testing.assert_allclose(model.net.forward(xs), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def small_max_pool_net(tmp_path_factory):
    """A torch conv + max-pool net exported to ONNX, an image and its closest adversary's distance by an
    independent big-M MILP."""
    torch.manual_seed(11)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(8, 3))
    path = export(net, (1, 5, 5), tmp_path_factory.mktemp("small") / "net.onnx")
    relunet = load_onnx(path).net
    x = np.random.default_rng(2).uniform(size=25)
    label = int(relunet.predict(x))
    reference = min(milp_min_distance(relunet, x, label, t) for t in range(3) if t != label)
    assert np.isfinite(reference)
    return path, relunet, x, label, reference


def test_max_pool_net_has_the_reference_min_distance(small_max_pool_net):
    _, net, x, label, reference = small_max_pool_net
    result = min_linf_distance(net, x, label, timeout=60, tol=1e-3)
    assert result.lower - 1e-6 <= reference <= result.upper + 1e-6
    assert result.upper - result.lower <= 1e-3 * (1 + 1e-6)


@pytest.mark.parametrize(("factor", "answer"), [(0.9, "holds"), (1.1, "violated")])
def test_verify_answers_robustness_properties_on_the_max_pool_net(small_max_pool_net, tmp_path, capsys, factor,
                                                                  answer):
    path, _, x, label, reference = small_max_pool_net
    eps = factor * reference
    lines = [f"(declare-const X_{i} Real)" for i in range(25)] + [f"(declare-const Y_{j} Real)" for j in range(3)]
    for i, (lo, hi) in enumerate(zip(np.clip(x - eps, 0, 1).tolist(), np.clip(x + eps, 0, 1).tolist(), strict=True)):
        lines += [f"(assert (>= X_{i} {lo!r}))", f"(assert (<= X_{i} {hi!r}))"]
    others = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(3) if j != label)
    prop = tmp_path / "robust.vnnlib"
    prop.write_text("\n".join([*lines, f"(assert (or {others}))", ""]))
    assert main(["verify", str(path), str(prop), "--timeout", "30"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == answer
