import pytest

from advgap.cli import main
from advgap.cli.run import parse_images, parse_targets
from advgap.errors import ConfigError


def test_image_selection_forms():
    assert parse_images("50") == (0, 50)
    assert parse_images("100:200") == (100, 200)
    for bad in ("x", "1:2:3", "a:b", ""):
        with pytest.raises(ConfigError, match="--images"):
            parse_images(bad)


def test_targets():
    assert parse_targets(None) == tuple(range(10))
    assert parse_targets("3, 5") == (3, 5)
    with pytest.raises(ConfigError, match="--targets"):
        parse_targets("three")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--images", "5:2"], "image range 5:2"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--attacks", "fgsm,cw"], "unknown attack 'cw'"),
        (["--models", "nowhere/missing.npz"], "nowhere/missing.npz: no such network file"),
    ],
)
def test_bad_arguments_give_one_error_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main(["run", "--out", str(tmp_path / "out"), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advgap: error: ") and message in err and "\n" not in err
