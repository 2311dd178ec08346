"""The zoo: the study's recipe on deeper nets, bundled beside the study's own two.

Each zoo net is trained vanilla (`<name>`), then adversarially from that vanilla net (`<name>-adv`): targeted
iterated FGSM (40 steps, random target and start) with CE(clean) + CE(adv) + logit pairing, δ = 0.3 then 0.1, as
the study's adversarial net. The vanilla schedule is the study's (60,000 batches of 64, Adam 1e-4); the adversarial
one is shorter than the study's 250k + 250k batches, and shorter still for ConvSmall, whose 40-step attack costs
≈ 8× an MLP's: each net's metadata records its profile and training time.
"""

from __future__ import annotations

from dataclasses import dataclass

from advgap.errors import ConfigError
from advgap.models.profile import Profile


@dataclass(frozen=True)
class ZooNet:
    """A zoo architecture: its name and its training profile."""

    name: str
    profile: Profile

    @property
    def names(self) -> tuple[str, str]:
        """The bundled names of its vanilla and adversarially trained nets."""
        return self.name, f"{self.name}-adv"


ZOO = (
    ZooNet("mlp-100x2", Profile("zoo-mlp-100x2", 60_000, ((0.3, 5_000), (0.1, 5_000)), hidden=(100, 100))),
    ZooNet("mlp-100x4", Profile("zoo-mlp-100x4", 60_000, ((0.3, 5_000), (0.1, 5_000)), hidden=(100,) * 4)),
    ZooNet("conv-small", Profile("zoo-conv-small", 60_000, ((0.3, 1_500), (0.1, 1_500)), arch="conv-small")),
)
STUDY_NETS = ("vanilla", "adversarial")  # the study's 784-50-10 nets, one hidden layer
ZOO_NAMES = tuple(name for net in ZOO for name in net.names)
ZOO_ALIAS = "zoo"  # in a list of model names: the study's nets and every zoo net, shallowest first


def expand_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` with `zoo` replaced by the study's nets and the zoo's, each name once, in order."""
    out: list[str] = []
    for name in names:
        for item in (*STUDY_NETS, *ZOO_NAMES) if name == ZOO_ALIAS else (name,):
            if item not in out:
                out.append(item)
    return tuple(out)


def zoo_net(name: str) -> ZooNet:
    """The zoo architecture called `name` (`mlp-100x2`, …)."""
    for net in ZOO:
        if net.name == name:
            return net
    raise ConfigError(f"unknown zoo net {name!r} (choose from {', '.join(n.name for n in ZOO)})")
