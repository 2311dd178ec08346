"""`Profile`: what to train and for how long (torch-free, so that the zoo's names load without torch)."""

from __future__ import annotations

from dataclasses import dataclass

from advgap.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """How long and how hard to train, and what: `arch` (`mlp` with `hidden` sizes, or `conv-small`);
    `adversarial_stages` is a sequence of (δ, number of batches).

    `warmup_batches` > 0 raises δ linearly from δ_1/warmup to the first stage's δ_1 over the first batches (what
    `norm` logit pairing needs to train, see the module docstring). `logit_pairing`: "squared" or "norm".
    """

    name: str
    vanilla_batches: int
    adversarial_stages: tuple[tuple[float, int], ...]
    batch_size: int = 64
    lr: float = 1e-4
    hidden: tuple[int, ...] = (50,)
    arch: str = "mlp"
    attack_steps: int = 40
    step_factor: float = 2.5
    logit_weight: float = 1.0
    logit_pairing: str = "squared"
    warmup_batches: int = 0
    checkpoint_every_s: float = 300.0

    def total_batches(self, kind: str) -> int:
        if kind == "vanilla":
            return self.vanilla_batches
        return sum(n for _, n in self.adversarial_stages)

    def alpha_at(self, delta: float) -> float:
        """The attack's step size at radius δ: step_factor·δ/attack_steps."""
        return self.step_factor * delta / self.attack_steps

    def delta_at(self, batch: int) -> float:
        """The attack radius δ of adversarial batch number `batch` (0-based)."""
        end = 0
        for delta, n in self.adversarial_stages:
            end += n
            if batch < end:
                if batch < self.warmup_batches:
                    return self.adversarial_stages[0][0] * (batch + 1) / self.warmup_batches
                return delta
        raise ConfigError(f"batch {batch} is past the end of profile {self.name!r}")
