"""advgap: the gap between first-order adversarial attacks and the exact closest adversarial example.

The public API (`advgap.api`) is imported on first use, so `import advgap` and the CLI start fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Network", "check_robust", "closest_attack", "load_network", "min_distance", "mnist", "robust_accuracy",
           "verify_vnnlib"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from advgap import api

        return getattr(api, name)
    raise AttributeError(f"module 'advgap' has no attribute {name!r}")
