import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from advgap.errors import ModelFormatError
from advgap.formats import onnx_proto
from advgap.formats.onnx_import import load_onnx

RNG = np.random.default_rng(3)
DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.bool_]


def sample(dtype, shape=(2, 3)):
    values = RNG.normal(size=shape) * 50
    return (values > 0) if dtype is np.bool_ else values.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "typed_field"])
def test_tensor_values_match_onnx_for_both_storages(dtype, raw):
    array = sample(dtype)
    if raw:
        tensor = numpy_helper.from_array(array, "t")
    else:
        data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor = helper.make_tensor("t", data_type, array.shape, array.reshape(-1).tolist(), raw=False)
    assert tensor.HasField("raw_data") == raw
    ours = onnx_proto.to_array(tensor)
    assert ours.dtype == array.dtype and ours.shape == array.shape
    np.testing.assert_array_equal(ours, numpy_helper.to_array(tensor))
    np.testing.assert_array_equal(ours, array)


def test_attributes_match_onnx():
    node = helper.make_node("Foo", [], [], f=1.5, i=3, s="SAME_UPPER", floats=[1.0, 2.5], ints=[1, 2, 3],
                            strings=["a", "b"], t=numpy_helper.from_array(np.arange(4.0, dtype=np.float32), "c"))
    for attr in node.attribute:
        expected = helper.get_attribute_value(attr)
        ours = onnx_proto.attribute_value(attr)
        if attr.name == "t":
            np.testing.assert_array_equal(ours, numpy_helper.to_array(expected))
        else:
            assert ours == expected


def test_unsupported_and_inconsistent_tensors_are_refused():
    with pytest.raises(ValueError, match="unsupported tensor data type COMPLEX64"):
        onnx_proto.to_array(numpy_helper.from_array(np.ones(2, dtype=np.complex64), "z"))
    short = numpy_helper.from_array(np.ones(4, dtype=np.float32), "w")
    short.raw_data = short.raw_data[:-4]
    with pytest.raises(ValueError, match=r"12 bytes of data for shape \[4\]"):
        onnx_proto.to_array(short)


def gemm_model(w, b):
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, w.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, w.shape[0]])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def test_external_data_is_read_from_beside_the_model(tmp_path):
    w, b = RNG.normal(size=(3, 40)).astype(np.float32), RNG.normal(size=3).astype(np.float32)
    path = tmp_path / "m.onnx"
    onnx.save_model(gemm_model(w, b), str(path), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    assert (tmp_path / "weights.bin").is_file()
    loaded = load_onnx(path)
    x = RNG.uniform(size=40)
    np.testing.assert_allclose(loaded.net.forward(x), w @ x + b, rtol=1e-5)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ModelFormatError, match=r"m\.onnx: not a valid ONNX model \(tensor 'W': cannot read"):
        load_onnx(path)


def test_external_data_outside_the_models_folder_is_refused(tmp_path):
    model = gemm_model(np.ones((2, 2), dtype=np.float32), np.zeros(2, dtype=np.float32))
    onnx.external_data_helper.set_external_data(model.graph.initializer[0], "../secret.bin")
    model.graph.initializer[0].ClearField("raw_data")
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFormatError, match="lies outside the model's folder"):
        load_onnx(path)


@pytest.mark.parametrize("content", [b"", b"\x08\x07"], ids=["empty", "no graph"])
def test_files_without_a_model_are_refused(tmp_path, content):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=r"not a valid ONNX model \(no IR version or no graph"):
        load_onnx(path)


def test_reading_an_onnx_network_does_not_import_the_onnx_package(shared_dir):
    """`import onnx` costs most of a second; reading a network needs only its protobuf classes."""
    net = shared_dir / "vnncomp_mnistfc" / "mnist-net_256x2.onnx"
    code = (
        "import sys\n"
        "from advgap.formats.network import read_network_file\n"
        f"network = read_network_file({str(net)!r})\n"
        "assert network.net.hidden_sizes == (256, 256), network.net.hidden_sizes\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'ml_dtypes')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['onnx.onnx_ml_pb2']"


def test_the_onnx_package_imported_later_shares_the_message_classes():
    code = (
        "from advgap.formats import onnx_proto\n"
        "import onnx\n"
        "assert onnx.ModelProto is onnx_proto.ModelProto\n"
        "assert onnx.load_model_from_string(onnx_proto.ModelProto(ir_version=7).SerializeToString()).ir_version == 7\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
