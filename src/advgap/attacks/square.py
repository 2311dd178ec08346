"""ART 1.20.1's L∞ Square attack (`SquareAttack.generate`, one restart), each query evaluated once.

ART's loop predicts three times per iteration: the whole batch (which samples still stand), the standing ones again
(their current loss) and the candidates; only the candidates are new. Here the logits of the current points are
kept, so an iteration is one forward pass over the candidates, and only a candidate's square is computed (the rest
of it is the current point, clamped into the box as ART's full-image clip would). Same random draws from numpy's
global generator in the same order, same arithmetic, same points (`tests/attacks/test_square.py` compares with
ART's `SquareAttack`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import numpy as np

_INTERVALS = [0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8]  # ART's schedule of the square's size
_RATIOS = [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256, 1 / 512]


def _margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ART's loss: the label's logit minus the second-highest logit."""
    label = np.take_along_axis(logits, labels[:, None], axis=1)
    second = np.take_along_axis(logits, np.argsort(logits, axis=1)[:, -2:-1], axis=1)
    return (label - second)[:, 0]


def square_linf(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, labels: np.ndarray, eps: float,
                max_iter: int, p_init: float = 0.8) -> np.ndarray:
    """Untargeted L∞ Square attack on float32 images x (B, C, H, W) in [0, 1] with integer labels (B,).

    predict maps images to logits; a sample stands while its argmax is its label. Returns float32 points in the
    eps-box ∩ [0, 1], as ART's `SquareAttack(norm=inf, nb_restarts=1, p_init=p_init).generate(x, y=labels)`.
    """
    n, channels, height, width = x.shape
    x_adv = x.astype(np.float32)
    logits = predict(x_adv)
    stands = np.argmax(logits, axis=1) == labels
    if not stands.any():
        return x_adv
    idx = np.flatnonzero(stands)
    stripes = np.random.choice([-1, 1], size=(idx.size, channels, 1, width))
    new = np.clip(x[idx] + eps * stripes, 0.0, 1.0).astype(np.float32)
    raw = np.zeros(n, dtype=bool)  # points with stripes ART has not clipped to the box yet (float32 ulps)
    raw[_accept(x_adv, logits, idx, new, predict(new), labels)] = True
    lower = np.maximum(x - eps, 0.0).astype(np.float32)  # ART's bounds, rounded to float32 as ART's are
    upper = np.minimum(x + eps, 1.0).astype(np.float32)
    for i_iter in range(max_iter):
        stands = np.argmax(logits, axis=1) == labels
        if not stands.any():
            break
        idx = np.flatnonzero(stands)
        share = p_init * _RATIOS[bisect.bisect_left(_INTERVALS, i_iter / max_iter)]
        side = max(round(math.sqrt(share * height * width)), 1)
        top = np.random.randint(0, height - side)
        left = np.random.randint(0, width - side)
        step = np.random.choice([-2 * eps, 2 * eps], size=[channels, 1, 1])
        square = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
        new = x_adv[idx]
        lo = lower[idx, :, top:top + side, left:left + side]
        hi = upper[idx, :, top:top + side, left:left + side]
        tile = np.minimum(np.maximum(new[square] + step, lo), hi).astype(np.float32)
        if (unclipped := raw[idx]).any():  # ART clips the whole candidate; elsewhere only its square changes
            new[unclipped] = np.clip(new[unclipped], lower[idx[unclipped]], upper[idx[unclipped]])
        new[square] = tile
        raw[_accept(x_adv, logits, idx, new, predict(new), labels)] = False
    return x_adv


def _accept(x_adv: np.ndarray, logits: np.ndarray, idx: np.ndarray, new: np.ndarray, new_logits: np.ndarray,
            labels: np.ndarray) -> np.ndarray:
    """Move the points idx whose candidate lowers the margin (ART: new loss − old loss < 0), in place; return them."""
    better = (_margin(new_logits, labels[idx]) - _margin(logits[idx], labels[idx])) < 0.0
    moved = idx[better]
    x_adv[moved] = new[better]
    logits[moved] = new_logits[better]
    return moved
