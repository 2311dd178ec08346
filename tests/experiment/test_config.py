import pytest

from advgap.errors import ConfigError
from advgap.experiment.config import RunConfig
from advgap.experiment.store import ResultStore


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"models": ()}, "no model"),
        ({"models": ("vanilla", "vanilla")}, "listed twice"),
        ({"images": (5, 5)}, "image range 5:5"),
        ({"images": (0, 10_001)}, "image range"),
        ({"targets": (3, 10)}, "targets must be classes"),
        ({"engine": "reluplex"}, "unknown engine 'reluplex'"),
        ({"attacks": ("fgsm", "cw")}, "unknown attack 'cw'"),
        ({"workers": 0}, "--workers"),
        ({"timeout": 0.0}, "--timeout"),
        ({"tol": 1.5}, "tolerance"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_message(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**changes)


def test_methods_follow_a_fixed_order_and_end_with_exact():
    assert RunConfig(attacks=("fmn", "fgsm")).methods == ("fgsm", "fmn", "exact")


def test_identity_ignores_selection_workers_and_folder_but_not_tolerance():
    hashes, data = {"vanilla": "ab"}, "cd"
    base = RunConfig(workers=1).identity(hashes, data)
    assert RunConfig(images=(10, 50), workers=2, out="elsewhere").identity(hashes, data) == base
    assert RunConfig(tol=1e-2).identity(hashes, data) != base
    assert RunConfig(targets=(1, 2)).identity(hashes, data) != base


def test_results_of_the_old_argmax_definition_are_not_mixed_with_new_ones(tmp_path):
    """Stores written before `advgap.adversarial` (no 'adversarial' entry in the identity) are refused."""
    new = RunConfig(workers=1).identity({"vanilla": "h"}, "d")
    assert new["adversarial"] == "logit_target >= logit_label"
    old = {k: v for k, v in new.items() if k != "adversarial"}
    ResultStore.open(tmp_path, old).close()
    with pytest.raises(ConfigError, match="adversarial: stored"):
        ResultStore.open(tmp_path, new)
