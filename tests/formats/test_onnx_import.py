import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from advgap.errors import ModelFormatError
from advgap.formats import affine, onnx_import
from advgap.formats.onnx_import import load_onnx, onnx_to_relunet
from advgap.verify.api import min_linf_distance
from advgap.verify.network import ReluNet
from advgap.verify.result import DistanceStatus
from support.brute_force import brute_force_min_distance

RNG = np.random.default_rng(1)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def save(tmp_path, nodes, inits, in_shape, out_shape, opset=13, name="m.onnx"):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def weights(out, inp):
    return RNG.normal(size=(out, inp)).astype(np.float32), RNG.normal(size=out).astype(np.float32)


def test_gemm_relu_gemm_matches_numpy_and_onnxruntime(tmp_path):
    w1, b1 = weights(5, 4)
    w2, b2 = weights(3, 5)
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("Gemm", ["r", "W2t", "b2"], ["y"], name="fc2", alpha=0.5, beta=2.0),
    ]
    inits = [const("W1", w1), const("b1", b1), const("W2t", w2.T), const("b2", b2)]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 4], [1, 3]))
    assert model.net.hidden_sizes == (5,)
    x = RNG.uniform(size=4)
    expected = 0.5 * (w2 @ np.maximum(w1 @ x + b1, 0)) + 2.0 * b2
    np.testing.assert_allclose(model.net.forward(x), expected, rtol=1e-5)
    np.testing.assert_allclose(model.replayer(x), expected, rtol=1e-5)
    assert model.max_abs_diff < 1e-5


def test_gemm_transA_on_column_input(tmp_path):
    w, b = weights(3, 4)
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transA=1, transB=1)]
    model = load_onnx(save(tmp_path, nodes, [const("W", w), const("b", b)], [4, 1], [1, 3]))
    x = RNG.uniform(size=4)
    np.testing.assert_allclose(model.net.forward(x), w @ x + b, rtol=1e-5)


def test_gemm_with_constant_first_operand(tmp_path):
    w, b = weights(3, 4)
    nodes = [helper.make_node("Gemm", ["W", "x", "b"], ["y"], name="fc")]
    model = load_onnx(save(tmp_path, nodes, [const("W", w), const("b", b.reshape(3, 1))], [4, 1], [3, 1]))
    x = RNG.uniform(size=4)
    np.testing.assert_allclose(model.net.forward(x), w @ x + b, rtol=1e-5)


def test_matmul_add_relu_and_consecutive_affine_layers_fold(tmp_path):
    w1, b1 = weights(6, 4)
    w2, b2 = weights(5, 6)
    w3, b3 = weights(2, 5)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["a"], name="mm1"),
        helper.make_node("Add", ["a", "b1"], ["h"], name="add1"),
        helper.make_node("MatMul", ["h", "W2"], ["c"], name="mm2"),
        helper.make_node("Add", ["b2", "c"], ["d"], name="add2"),
        helper.make_node("Relu", ["d"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "W3"], ["e"], name="mm3"),
        helper.make_node("Add", ["e", "b3"], ["y"], name="add3"),
    ]
    inits = [const("W1", w1.T), const("b1", b1), const("W2", w2.T), const("b2", b2), const("W3", w3.T), const("b3", b3)]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 4], [1, 2]))
    assert len(model.net.weights) == 2 and model.net.hidden_sizes == (5,)
    x = RNG.uniform(size=4)
    expected = w3 @ np.maximum(w2 @ (w1 @ x + b1) + b2, 0) + b3
    np.testing.assert_allclose(model.net.forward(x), expected, rtol=1e-4)


def test_input_normalisation_folds_into_first_layer(tmp_path):
    w, b = weights(3, 4)
    mean, std = np.float32(0.1307), np.float32(0.3081)
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"], name="sub"),
        helper.make_node("Div", ["s", "std"], ["n"], name="div"),
        helper.make_node("Mul", ["scale", "n"], ["m"], name="mul"),
        helper.make_node("Gemm", ["m", "W", "b"], ["y"], name="fc", transB=1),
    ]
    scale = np.array([1.0, 2.0, 0.5, -1.0], dtype=np.float32)
    inits = [const("mean", mean), const("std", std), const("scale", scale), const("W", w), const("b", b)]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 4], [1, 3]))
    assert len(model.net.weights) == 1
    x = RNG.uniform(size=4)
    np.testing.assert_allclose(model.net.forward(x), w @ (scale * (x - mean) / std) + b, rtol=1e-4)


def test_constant_minus_input(tmp_path):
    nodes = [helper.make_node("Sub", ["c", "x"], ["y"], name="sub")]
    model = load_onnx(save(tmp_path, nodes, [const("c", [1.0, 2.0])], [1, 2], [1, 2]))
    np.testing.assert_allclose(model.net.forward(np.array([0.25, 0.5])), [0.75, 1.5])


@pytest.mark.parametrize("opset", [11, 13])
def test_shape_only_operators(tmp_path, opset):
    w, b = weights(3, 6)
    if opset >= 13:
        squeeze = helper.make_node("Squeeze", ["u", "ax"], ["s"], name="squeeze")
        unsqueeze = helper.make_node("Unsqueeze", ["r", "ax"], ["u"], name="unsqueeze")
        extra = [ints("ax", [0])]
    else:
        squeeze = helper.make_node("Squeeze", ["u"], ["s"], name="squeeze", axes=[0])
        unsqueeze = helper.make_node("Unsqueeze", ["r"], ["u"], name="unsqueeze", axes=[0])
        extra = []
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flatten", axis=1),
        helper.make_node("Identity", ["f"], ["i"], name="identity"),
        helper.make_node("Reshape", ["i", "shape"], ["r"], name="reshape"),
        unsqueeze,
        squeeze,
        helper.make_node("Reshape", ["s", "flat"], ["t"], name="reshape2"),
        helper.make_node("Gemm", ["t", "W", "b"], ["y"], name="fc", transB=1),
    ]
    inits = [ints("shape", [0, 2, -1]), ints("flat", [1, -1]), const("W", w), const("b", b), *extra]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 2, 3, 1], [1, 3], opset=opset))
    x = RNG.uniform(size=6)
    np.testing.assert_allclose(model.net.forward(x), w @ x + b, rtol=1e-5)


def test_constant_node_and_output_relu(tmp_path):
    w, b = weights(3, 2)
    nodes = [
        helper.make_node("Constant", [], ["W"], name="cw", value=numpy_helper.from_array(w.T, "W")),
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
        helper.make_node("Add", ["h", "b"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
    ]
    model = load_onnx(save(tmp_path, nodes, [const("b", b)], [1, 2], [1, 3]))
    x = RNG.uniform(size=2)
    np.testing.assert_allclose(model.net.forward(x), np.maximum(w @ x + b, 0), rtol=1e-5)


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "Softmax"])
def test_unsupported_operator_is_named_with_its_node(tmp_path, op):
    w, b = weights(2, 2)
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc", transB=1),
        helper.make_node(op, ["h"], ["y"], name="act7"),
    ]
    with pytest.raises(ModelFormatError, match=rf"unsupported operator {op} in node 'act7'"):
        load_onnx(save(tmp_path, nodes, [const("W", w), const("b", b)], [1, 2], [1, 2]))


def free(rank):
    """A symbolic output shape of the given rank (the importer reads no output shape)."""
    return [f"d{i}" for i in range(rank)]


def assert_matches_onnxruntime(model, n_checks=4):
    xs = RNG.uniform(size=(n_checks, model.net.n_inputs))
    np.testing.assert_allclose(model.net.forward(xs), model.replayer(xs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("in_shape", "kernel_shape", "attrs", "bias"),
    [
        ([1, 2, 7, 6], (4, 2, 3, 2), {"strides": [2, 1], "pads": [1, 0, 2, 1]}, True),
        ([1, 4, 8, 7], (6, 2, 3, 3), {"dilations": [2, 1], "group": 2, "pads": [2, 1, 2, 1]}, False),
        ([1, 3, 7, 6], (6, 1, 3, 2), {"group": 3, "strides": [2, 3], "auto_pad": "SAME_UPPER"}, True),
        ([1, 1, 6, 6], (2, 1, 2, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, True),
        ([1, 2, 5, 5], (3, 2, 3, 3), {"auto_pad": "VALID", "kernel_shape": [3, 3]}, True),
        ([1, 2, 9], (3, 2, 3), {"strides": [2], "pads": [1, 2], "dilations": [2]}, True),
    ],
    ids=["stride-asymmetric-pads", "dilation-group", "same-upper-depthwise", "same-lower", "valid", "conv1d"],
)
def test_conv_matches_onnxruntime(tmp_path, in_shape, kernel_shape, attrs, bias):
    inputs = ["x", "k", "b"] if bias else ["x", "k"]
    nodes = [helper.make_node("Conv", inputs, ["y"], name="conv", **attrs)]
    inits = [const("k", RNG.normal(size=kernel_shape)), const("b", RNG.normal(size=kernel_shape[0]))]
    model = load_onnx(save(tmp_path, nodes, inits[: len(inputs) - 1], in_shape, free(len(in_shape))))
    assert model.net.n_inputs == np.prod(in_shape) and len(model.net.weights) == 1
    assert_matches_onnxruntime(model)


def test_conv_relu_conv_relu_flatten_gemm(tmp_path, monkeypatch):
    monkeypatch.setattr(affine, "CHUNK_BYTES", 3000)  # several rows per chunk, a partial last chunk
    w, b = weights(3, 3 * 2 * 2)
    nodes = [
        helper.make_node("Conv", ["x", "k1", "b1"], ["c1"], name="conv1", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "k2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc", transB=1),
    ]
    inits = [
        const("k1", RNG.normal(size=(4, 1, 3, 3))),
        const("b1", RNG.normal(size=4)),
        const("k2", RNG.normal(size=(3, 4, 3, 3))),
        const("b2", RNG.normal(size=3)),
        const("W", w),
        const("b", b),
    ]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 1, 8, 8], [1, 3]))
    assert model.net.hidden_sizes == (4 * 4 * 4, 3 * 2 * 2)
    assert_matches_onnxruntime(model)


def test_batchnorm_after_conv_folds_into_the_layer(tmp_path):
    channels = 3
    nodes = [
        helper.make_node("Conv", ["x", "k"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "B", "mean", "var"], ["n"], name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc", transB=1),
    ]
    w, b = weights(2, channels * 4 * 4)
    inits = [
        const("k", RNG.normal(size=(channels, 2, 3, 3))),
        const("scale", RNG.normal(size=channels)),
        const("B", RNG.normal(size=channels)),
        const("mean", RNG.normal(size=channels)),
        const("var", RNG.uniform(0.1, 2.0, size=channels)),
        const("W", w),
        const("b", b),
    ]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 2, 4, 4], [1, 2]))
    assert model.net.hidden_sizes == (channels * 4 * 4,)
    assert_matches_onnxruntime(model)


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], None])
def test_transpose(tmp_path, perm):
    w, b = weights(3, 24)
    attrs = {} if perm is None else {"perm": perm}
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="transpose", **attrs),
        helper.make_node("Reshape", ["t", "flat"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc", transB=1),
    ]
    inits = [ints("flat", [1, -1]), const("W", w), const("b", b)]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 2, 3, 4], free(2)))
    x = RNG.uniform(size=(1, 2, 3, 4))
    moved = np.transpose(x, perm)
    np.testing.assert_allclose(model.net.forward(x.reshape(-1)), w @ moved.reshape(-1) + b, rtol=1e-5)


@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_shape": [2, 2], "strides": [2, 2]},
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 0},
        {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 2, 1], "count_include_pad": 1},
        {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
        {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
    ],
    ids=["plain", "pads-exclude", "asymmetric-pads-include", "same-upper", "ceil-exact"],
)
def test_average_pool_after_conv(tmp_path, attrs):
    nodes = [
        helper.make_node("Conv", ["x", "k", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("AveragePool", ["r"], ["y"], name="pool", **attrs),
    ]
    inits = [const("k", RNG.normal(size=(2, 1, 3, 3))), const("b", RNG.normal(size=2))]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 1, 8, 8], free(4), opset=11))
    assert_matches_onnxruntime(model)


def test_global_average_pool(tmp_path):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap")]
    model = load_onnx(save(tmp_path, nodes, [], [1, 3, 4, 5], [1, 3, 1, 1]))
    x = RNG.uniform(size=(3, 4, 5))
    np.testing.assert_allclose(model.net.forward(x.reshape(-1)), x.mean(axis=(1, 2)))


@pytest.mark.parametrize("opset", [10, 11, 18])
def test_pad_then_conv(tmp_path, opset):
    pads = [0, 0, -1, 2, 0, 0, 1, 1]
    if opset >= 11:
        pad = helper.make_node("Pad", ["x", "pads", "fill"], ["p"], name="pad", mode="constant")
        inits = [ints("pads", pads), const("fill", 0.5)]
    else:
        pad = helper.make_node("Pad", ["x"], ["p"], name="pad", pads=pads, value=0.5)
        inits = []
    if opset >= 18:
        pad = helper.make_node("Pad", ["x", "pads", "fill", "axes"], ["p"], name="pad")
        inits = [ints("pads", [1, -1, -1, 1]), const("fill", 0.5), ints("axes", [-2, 3])]
    nodes = [pad, helper.make_node("Conv", ["p", "k"], ["y"], name="conv")]
    inits.append(const("k", RNG.normal(size=(2, 1, 2, 2))))
    model = load_onnx(save(tmp_path, nodes, inits, [1, 1, 4, 3], free(4), opset=opset))
    assert_matches_onnxruntime(model)


def test_dropout_is_identity_and_its_mask_only_if_unused(tmp_path):
    w, b = weights(3, 4)
    nodes = [
        helper.make_node("Dropout", ["x", "ratio"], ["d", "mask"], name="drop"),
        helper.make_node("Gemm", ["d", "W", "b"], ["y"], name="fc", transB=1),
    ]
    inits = [const("ratio", 0.5), const("W", w), const("b", b)]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 4], [1, 3]))
    x = RNG.uniform(size=4)
    np.testing.assert_allclose(model.net.forward(x), w @ x + b, rtol=1e-5)
    nodes.append(helper.make_node("Cast", ["mask"], ["m"], name="cast", to=TensorProto.FLOAT))
    with pytest.raises(ModelFormatError, match=r"node 'drop' \(Dropout\): only its first output .* 'mask' is used"):
        onnx_to_relunet(onnx.load(str(save(tmp_path, nodes, inits, [1, 4], [1, 3], name="mask.onnx"))), "mask.onnx")


def test_neg_concat_and_dynamic_flatten(tmp_path):
    """CReLU (concat of x and -x, then Relu) and a torch-style flatten through Shape, Gather, Concat."""
    w, b = weights(2, 20)
    nodes = [
        helper.make_node("Neg", ["x"], ["n"], name="neg"),
        helper.make_node("Concat", ["x", "n", "zeros"], ["c"], name="concat", axis=1),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Shape", ["r"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["g"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["g", "ax"], ["u"], name="unsqueeze"),
        helper.make_node("Concat", ["u", "minus_one"], ["target"], name="concat_shape", axis=0),
        helper.make_node("Reshape", ["r", "target"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc", transB=1),
    ]
    inits = [
        const("zeros", np.zeros((1, 1, 4))),
        ints("zero", 0),
        ints("ax", [0]),
        ints("minus_one", [-1]),
        const("W", w),
        const("b", b),
    ]
    model = load_onnx(save(tmp_path, nodes, inits, [1, 2, 4], [1, 2]))
    assert model.net.hidden_sizes == (20,)
    x = RNG.uniform(-1, 1, size=(2, 4))
    hidden = np.maximum(np.concatenate([x, -x, np.zeros((1, 4))]), 0).reshape(-1)
    np.testing.assert_allclose(model.net.forward(x.reshape(-1)), w @ hidden + b, rtol=1e-5)


def test_gather_on_input_dependent_tensor(tmp_path):
    nodes = [helper.make_node("Gather", ["x", "idx"], ["y"], name="gather", axis=1)]
    model = load_onnx(save(tmp_path, nodes, [ints("idx", [3, -4, 2])], [1, 5], [1, 3]))
    x = RNG.uniform(size=5)
    np.testing.assert_allclose(model.net.forward(x), x[[3, 1, 2]])


def test_networks_too_large_for_the_dense_form_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(affine, "MAX_LAYER_BYTES", 8 * (16 * 16 + 2 * 16))  # a 16x16 layer and a 2x16 output fit
    nodes = [
        helper.make_node("Conv", ["x", "k"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc", transB=1),
    ]
    one, two = const("k", np.ones((1, 1, 3, 3))), const("k", np.ones((2, 1, 3, 3)))
    w, b = weights(2, 16)
    path = save(tmp_path, nodes, [one, const("W", w), const("b", b)], [1, 1, 4, 4], [1, 2])
    assert onnx_to_relunet(onnx.load(str(path))).hidden_sizes == (16,)
    w, b = weights(3, 16)
    with pytest.raises(ModelFormatError, match=r"output 'y': its dense layer needs 384 B \(2.38 KiB with the layers "
                                               r"before it\), limit 2.25 KiB: too large for the verifier$"):
        load_onnx(save(tmp_path, nodes, [one, const("W", w), const("b", b)], [1, 1, 4, 4], [1, 3], name="wide.onnx"))
    w, b = weights(2, 32)
    with pytest.raises(ModelFormatError, match=r"node 'relu' \(Relu\): its dense layer needs 4.00 KiB, limit"):
        load_onnx(save(tmp_path, nodes, [two, const("W", w), const("b", b)], [1, 1, 4, 4], [1, 2], name="two.onnx"))


@pytest.mark.parametrize(
    ("node", "inits", "in_shape", "message"),
    [
        (
            helper.make_node("Conv", ["x", "k"], ["y"], name="c3d"),
            [const("k", np.ones((1, 1, 2, 2, 2)))],
            [1, 1, 3, 3, 3],
            r"only 1-D and 2-D convolutions",
        ),
        (
            helper.make_node("Conv", ["x", "k"], ["y"], name="cg", group=2),
            [const("k", np.ones((3, 1, 2, 2)))],
            [1, 2, 3, 3],
            r"2 input channels and group 2 do not fit",
        ),
        (
            helper.make_node("Conv", ["x", "x"], ["y"], name="cx"),
            [],
            [1, 1, 2, 2],
            r"weights and bias must be constants",
        ),
        (
            helper.make_node("AveragePool", ["x"], ["y"], name="ceil", kernel_shape=[2, 2], strides=[2, 2],
                             ceil_mode=1),
            [],
            [1, 1, 5, 5],
            r"ceil_mode with partial windows",
        ),
        (
            helper.make_node("AveragePool", ["x"], ["y"], name="nokernel"),
            [],
            [1, 1, 5, 5],
            r"missing attribute 'kernel_shape'",
        ),
        (
            helper.make_node("Pad", ["x", "pads"], ["y"], name="reflect", mode="reflect"),
            [ints("pads", [0, 0, 1, 1, 0, 0, 1, 1])],
            [1, 1, 3, 3],
            r"pad mode 'reflect' is not supported",
        ),
        (
            helper.make_node("Dropout", ["x", "ratio", "train"], ["y"], name="drop"),
            [const("ratio", 0.5), numpy_helper.from_array(np.array(True), "train")],
            [1, 4],
            r"training_mode Dropout",
        ),
    ],
    ids=["conv3d", "group", "kernel-from-input", "ceil-partial", "no-kernel", "reflect-pad", "training-dropout"],
)
def test_unsupported_linear_operator_forms_are_refused(node, inits, in_shape, message):
    model = helper.make_model(
        helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            inits,
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    with pytest.raises(ModelFormatError, match=rf"^m\.onnx: node '{node.name}' \({node.op_type}\): {message}"):
        onnx_to_relunet(model, "m.onnx")


def test_torch_exported_conv_net_has_the_brute_force_min_distance(tmp_path):
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    )
    path = tmp_path / "conv.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter; the new one needs onnxscript
        torch.onnx.export(net, torch.zeros(1, 1, 4, 4), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    model = load_onnx(path)
    assert model.net.hidden_sizes == (8,)
    x = np.random.default_rng(4).uniform(size=16)
    with torch.no_grad():
        expected = net.double()(torch.from_numpy(x).reshape(1, 1, 4, 4))[0].numpy()
    np.testing.assert_allclose(model.net.forward(x), expected, rtol=1e-6)
    label = int(model.net.predict(x))
    reference = brute_force_min_distance(model.net, x, label, [t for t in range(3) if t != label])
    result = min_linf_distance(model.net, x, label, timeout=30, tol=1e-3)
    assert result.status is DistanceStatus.EXACT and np.isfinite(reference)
    assert result.lower - 1e-6 <= reference <= result.upper + 1e-6


def test_product_of_input_dependent_tensors_is_refused(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "x"], ["y"], name="square")]
    with pytest.raises(ModelFormatError, match=r"node 'square' \(Mul\): multiplies two input-dependent"):
        load_onnx(save(tmp_path, nodes, [], [1, 2], [1, 2]))


def test_nan_weights_are_refused(tmp_path):
    w, b = weights(2, 2)
    w[0, 1] = np.nan
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1)]
    with pytest.raises(ModelFormatError, match=r"initializer 'W' contains NaN"):
        load_onnx(save(tmp_path, nodes, [const("W", w), const("b", b)], [1, 2], [1, 2]))


def test_output_independent_of_input_is_refused(tmp_path):
    nodes = [
        helper.make_node("Identity", ["x"], ["unused"], name="id"),
        helper.make_node("Identity", ["c"], ["y"], name="id2"),
    ]
    with pytest.raises(ModelFormatError, match="does not depend on the input"):
        load_onnx(save(tmp_path, nodes, [const("c", [[1.0, 2.0]])], [1, 2], [1, 2]))


def test_garbage_and_missing_files_are_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage not a protobuf \xff\xff")
    with pytest.raises(ModelFormatError, match=r"bad\.onnx: not a valid ONNX model"):
        load_onnx(bad)
    with pytest.raises(ModelFormatError, match="no such ONNX file"):
        load_onnx(tmp_path / "missing.onnx")


def test_disagreement_with_onnxruntime_is_refused(tmp_path, monkeypatch):
    w, b = weights(2, 2)
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1)]
    path = save(tmp_path, nodes, [const("W", w), const("b", b)], [1, 2], [1, 2])

    def shifted(model, source):
        return ReluNet.from_layers([(w, b + 1e-2)])

    monkeypatch.setattr(onnx_import, "onnx_to_relunet", shifted)
    with pytest.raises(ModelFormatError, match=r"differs from onnxruntime by 0\.01"):
        load_onnx(path)


def test_mnistfc_net_matches_onnxruntime(shared_dir):
    path = shared_dir / "vnncomp_mnistfc" / "mnist-net_256x2.onnx"
    model = load_onnx(path)
    assert (model.net.n_inputs, model.net.hidden_sizes, model.net.n_outputs) == (784, (256, 256), 10)
    xs = np.random.default_rng(5).uniform(size=(4, 784))
    np.testing.assert_allclose(model.net.forward(xs), model.replayer(xs), atol=1e-4)
    assert model.max_abs_diff < 1e-5
    direct = onnx_to_relunet(onnx.load(str(path)))
    np.testing.assert_array_equal(direct.weights[0], model.net.weights[0])
