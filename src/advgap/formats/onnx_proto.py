"""ONNX files read with the protobuf messages alone, without importing the `onnx` package.

`import onnx` costs most of a second (its `ml_dtypes` extension), more than verifying an easy instance. Reading a
model needs only the generated message classes `onnx/onnx_ml_pb2.py`; this module loads that file under its own
name `onnx.onnx_ml_pb2`, so that a later `import onnx` in the same process reuses the very same classes, and
converts tensors and attributes to numpy itself. Validation is left to onnxruntime (`advgap.formats.onnx_import`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

META_KEY = "advgap"  # the metadata_props key of advgap's JSON metadata (training recipe, accuracies)
_PB2 = "onnx.onnx_ml_pb2"


def _messages() -> ModuleType:
    """The module of ONNX's generated protobuf classes, loaded from its file unless `onnx` already loaded it."""
    if _PB2 in sys.modules:
        return sys.modules[_PB2]
    package = importlib.util.find_spec("onnx")
    if package is None or package.origin is None:
        raise ImportError("the onnx package is not installed")
    spec = importlib.util.spec_from_file_location(_PB2, Path(package.origin).parent / "onnx_ml_pb2.py")
    if spec is None or spec.loader is None:
        raise ImportError("onnx/onnx_ml_pb2.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PB2] = module
    spec.loader.exec_module(module)
    return module


_pb = _messages()
ModelProto = _pb.ModelProto
TensorProto = _pb.TensorProto
AttributeProto = _pb.AttributeProto
ValueInfoProto = _pb.ValueInfoProto

# TensorProto.DataType → numpy dtype, for the types a ReLU network's constants can have
DTYPES: dict[int, np.dtype] = {
    TensorProto.FLOAT: np.dtype(np.float32),
    TensorProto.DOUBLE: np.dtype(np.float64),
    TensorProto.FLOAT16: np.dtype(np.float16),
    TensorProto.INT8: np.dtype(np.int8),
    TensorProto.INT16: np.dtype(np.int16),
    TensorProto.INT32: np.dtype(np.int32),
    TensorProto.INT64: np.dtype(np.int64),
    TensorProto.UINT8: np.dtype(np.uint8),
    TensorProto.UINT16: np.dtype(np.uint16),
    TensorProto.UINT32: np.dtype(np.uint32),
    TensorProto.UINT64: np.dtype(np.uint64),
    TensorProto.BOOL: np.dtype(np.bool_),
}
# the repeated field that holds a tensor's values when it has no raw_data, and the dtype that field stores
_TYPED_FIELDS: dict[int, tuple[str, np.dtype]] = {
    TensorProto.FLOAT: ("float_data", np.dtype(np.float32)),
    TensorProto.DOUBLE: ("double_data", np.dtype(np.float64)),
    TensorProto.FLOAT16: ("int32_data", np.dtype(np.uint16)),  # the half's bit pattern
    TensorProto.INT64: ("int64_data", np.dtype(np.int64)),
    TensorProto.UINT32: ("uint64_data", np.dtype(np.uint64)),
    TensorProto.UINT64: ("uint64_data", np.dtype(np.uint64)),
    **{t: ("int32_data", np.dtype(np.int32)) for t in (TensorProto.INT8, TensorProto.INT16, TensorProto.INT32,
                                                         TensorProto.UINT8, TensorProto.UINT16, TensorProto.BOOL)},
}


def np_dtype(data_type: int) -> np.dtype:
    """The numpy dtype of an ONNX TensorProto.DataType; ValueError for types advgap does not read."""
    if data_type not in DTYPES:
        raise ValueError(f"unsupported tensor data type {_type_name(data_type)}")
    return DTYPES[data_type]


def to_array(tensor: Any) -> np.ndarray:
    """A TensorProto's values as a numpy array of its own dtype and shape (external data already loaded)."""
    dtype = np_dtype(tensor.data_type)
    if tensor.data_location == TensorProto.EXTERNAL:
        raise ValueError(f"tensor {tensor.name!r}: its external data was not loaded")
    shape = tuple(int(d) for d in tensor.dims)
    count = int(np.prod(shape))
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != count * dtype.itemsize:
            raise ValueError(f"tensor {tensor.name!r}: {len(tensor.raw_data)} bytes of data for shape {list(shape)}")
        return np.frombuffer(tensor.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    name, stored = _TYPED_FIELDS[tensor.data_type]
    values = np.asarray(getattr(tensor, name), dtype=stored)
    if values.size != count:
        raise ValueError(f"tensor {tensor.name!r}: {values.size} values for shape {list(shape)}")
    if tensor.data_type == TensorProto.FLOAT16:
        return values.view(np.float16).reshape(shape)
    return values.astype(dtype).reshape(shape)


def attribute_value(attr: Any) -> Any:
    """A node attribute as Python: int, float, bytes, numpy array (tensor), or a list of one of these."""
    kind = attr.type
    if kind == AttributeProto.FLOAT:
        return attr.f
    if kind == AttributeProto.INT:
        return attr.i
    if kind == AttributeProto.STRING:
        return attr.s
    if kind == AttributeProto.TENSOR:
        return to_array(attr.t)
    if kind == AttributeProto.FLOATS:
        return list(attr.floats)
    if kind == AttributeProto.INTS:
        return list(attr.ints)
    if kind == AttributeProto.STRINGS:
        return list(attr.strings)
    if kind == AttributeProto.TENSORS:
        return [to_array(t) for t in attr.tensors]
    raise ValueError(f"attribute {attr.name!r} has unsupported type {AttributeProto.AttributeType.Name(kind)}")


def read_model(path: Path) -> Any:
    """Parse the ModelProto in `path` and load its external tensor data (files beside it); ValueError on defects."""
    try:
        model = ModelProto.FromString(path.read_bytes())
    except DecodeError as exc:
        raise ValueError(f"not a protobuf ModelProto ({exc})") from exc
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ValueError("no IR version or no graph: not an ONNX model")
    for tensor in _tensors(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL:
            _load_external(tensor, path.parent)
    return model


def _tensors(graph: Any) -> list[Any]:
    """The initializers and Constant node tensors of `graph` (subgraphs are not followed: advgap refuses them)."""
    found = list(graph.initializer)
    for node in graph.node:
        found += [a.t for a in node.attribute if a.type == AttributeProto.TENSOR]
    return found


def _load_external(tensor: Any, folder: Path) -> None:
    """Move a tensor's external data into raw_data, as `onnx.load_model` does."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    if "location" not in info:
        raise ValueError(f"tensor {tensor.name!r}: external data without a location")
    file = folder / info["location"]
    if not file.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"tensor {tensor.name!r}: external data {info['location']!r} lies outside the model's folder")
    try:
        offset, length = int(info.get("offset", 0)), int(info["length"]) if "length" in info else -1
        with file.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
    except (OSError, ValueError) as exc:
        raise ValueError(f"tensor {tensor.name!r}: cannot read its external data {str(file)!r} ({exc})") from exc
    tensor.raw_data = data
    tensor.data_location = TensorProto.DEFAULT
    del tensor.external_data[:]


def _type_name(data_type: int) -> str:
    try:
        return TensorProto.DataType.Name(data_type)
    except ValueError:
        return str(data_type)
