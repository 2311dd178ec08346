"""ONNX export: onnxruntime on the exported file agrees with the ReluNet and the torch model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch

from advgap.formats.onnx_export import save_onnx, to_onnx
from advgap.models.torch_import import from_torch
from advgap.models.torchnet import make_mlp


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x.astype(np.float32)})[0]


def test_exported_net_matches_relunet_and_torch(tmp_path):
    torch.manual_seed(0)
    model = make_mlp(784, (50, 20), 10)
    net = from_torch(model)
    path = tmp_path / "net.onnx"
    save_onnx(path, net)
    x = np.random.default_rng(0).random((257, 784), dtype=np.float32)
    got = run_onnx(path, x)
    assert got.shape == (257, 10)
    assert np.abs(got - net.forward(x)).max() < 1e-5
    with torch.no_grad():
        assert np.abs(got - model(torch.from_numpy(x)).numpy()).max() < 1e-5


def test_graph_shape_and_operators():
    net = from_torch(make_mlp(784, (50,), 10))
    model = to_onnx(net)
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Relu", "Gemm"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 784
    onnx.checker.check_model(model)
