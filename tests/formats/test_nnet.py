import numpy as np
import pytest

from advgap.errors import ModelFormatError
from advgap.formats.nnet import read_nnet, write_nnet
from advgap.verify.network import ReluNet

RNG = np.random.default_rng(2)

# 2 inputs, one hidden layer of 3, 2 outputs; inputs normalised with mean (0.5, 1.0) and range (2.0, 4.0),
# outputs de-normalised with mean 10 and range 3.
NORMALISED = """\
// a hand-written NNet file
// second comment line
2,2,2,3,
2,3,2,
0,
0.0,0.0,
1.0,1.0,
0.5,1.0,10.0,
2.0,4.0,3.0,
1.0,-2.0,
0.5,0.25,
-1.0,1.0,
0.1,
-0.2,
0.3,
1.0,0.0,-1.0,
2.0,1.0,0.5,
0.0,
-1.0,
"""


def reference(x):
    w1 = np.array([[1.0, -2.0], [0.5, 0.25], [-1.0, 1.0]])
    b1 = np.array([0.1, -0.2, 0.3])
    w2 = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
    b2 = np.array([0.0, -1.0])
    xn = (x - np.array([0.5, 1.0])) / np.array([2.0, 4.0])
    return 3.0 * (w2 @ np.maximum(w1 @ xn + b1, 0) + b2) + 10.0


def test_normalisation_is_folded_into_first_and_last_layer(tmp_path):
    path = tmp_path / "n.nnet"
    path.write_text(NORMALISED)
    net = read_nnet(path)
    assert net.hidden_sizes == (3,)
    for x in RNG.uniform(size=(5, 2)):
        np.testing.assert_allclose(net.forward(x), reference(x), rtol=1e-12)


def test_round_trip_is_exact(tmp_path):
    net = ReluNet.from_layers(
        [(RNG.normal(size=(7, 5)), RNG.normal(size=7)), (RNG.normal(size=(3, 7)), RNG.normal(size=3))]
    )
    path = tmp_path / "r.nnet"
    write_nnet(path, net)
    back = read_nnet(path)
    for w, w2 in zip(net.weights + net.biases, back.weights + back.biases, strict=True):
        np.testing.assert_array_equal(w, w2)


def test_round_trip_of_normalised_file(tmp_path):
    src = tmp_path / "n.nnet"
    src.write_text(NORMALISED)
    net = read_nnet(src)
    write_nnet(tmp_path / "again.nnet", net)
    back = read_nnet(tmp_path / "again.nnet")
    xs = RNG.uniform(size=(5, 2))
    np.testing.assert_array_equal(back.forward(xs), net.forward(xs))
    assert (tmp_path / "again.nnet").read_text().startswith("// written by advgap\n2,2,2,3,\n2,3,2,\n")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("0.1,\n", "abc,\n"), r"line 13: could not convert"),
        (lambda t: t.replace("0.5,0.25,", "0.5,"), r"line 11: weights of layer 0 needs 2 values, found 1"),
        (lambda t: t.replace("2.0,4.0,3.0,", "2.0,0.0,3.0,"), "range is zero"),
        (lambda t: t.replace("0.3,\n", "nan,\n"), "line 15: NaN or inf"),
        (lambda t: t + "7,\n", "line 20: unexpected data after the last layer"),
        (lambda t: t.rsplit("-1.0,", 1)[0], "file ends before the bias of layer 1"),
        (lambda t: t.replace("2,3,2,", "2,3,4,"), "disagree with the header"),
    ],
)
def test_malformed_files_name_the_defect(tmp_path, edit, message):
    path = tmp_path / "bad.nnet"
    path.write_text(edit(NORMALISED))
    with pytest.raises(ModelFormatError, match=message):
        read_nnet(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot read NNet file"):
        read_nnet(tmp_path / "none.nnet")
