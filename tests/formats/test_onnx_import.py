import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from advgap.errors import ModelFormatError
from advgap.formats import onnx_import
from advgap.formats.onnx_import import load_onnx, onnx_to_relunet
from advgap.verify.network import ReluNet

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


def test_conv_is_refused(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "k"], ["y"], name="conv0")]
    kernel = const("k", np.ones((1, 1, 2, 2)))
    with pytest.raises(ModelFormatError, match=r"Conv in node 'conv0'"):
        load_onnx(save(tmp_path, nodes, [kernel], [1, 1, 3, 3], [1, 1, 2, 2]))


def test_product_of_input_dependent_tensors_is_refused(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "x"], ["y"], name="square")]
    with pytest.raises(ModelFormatError, match=r"node 'square' \(Mul\): multiplies two input-dependent"):
        load_onnx(save(tmp_path, nodes, [], [1, 2], [1, 2]))


def test_skip_connection_across_relu_is_refused(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "x"], ["y"], name="skip"),
    ]
    with pytest.raises(ModelFormatError, match=r"node 'skip'.*before and after a Relu"):
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
