"""Response families: how y maps to the Gaussian scale the model works on.

Both supported families are Gaussian on some scale, which is what makes the
random effects integrable in closed form. ``lognormal`` models log(y) as
Gaussian; its log-likelihood of the original y adds the Jacobian -sum(log y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Family", "get_family", "FAMILIES"]


@dataclass(frozen=True)
class Family:
    name: str
    log_scale: bool  # True: the Gaussian model is for log(y)

    def to_model_scale(self, y: np.ndarray) -> np.ndarray:
        if not self.log_scale:
            return y
        if np.any(y <= 0):
            raise ValueError(
                f"family='lognormal' needs a strictly positive response; {int(np.sum(y <= 0))} values are <= 0."
            )
        return np.log(y)

    def log_jacobian(self, y_original: np.ndarray) -> float:
        """log |d model_scale / d y| summed over rows: -sum(log y) for lognormal."""
        return -float(np.sum(np.log(y_original))) if self.log_scale else 0.0

    def from_model_scale(self, x):
        return np.exp(x) if self.log_scale else x


FAMILIES = {"gaussian": Family("gaussian", False), "lognormal": Family("lognormal", True)}


def get_family(name) -> Family:
    if isinstance(name, Family):
        return name
    if not isinstance(name, str) or name.lower() not in FAMILIES:
        raise ValueError(f"Unknown family {name!r}; supported families are: {', '.join(FAMILIES)}.")
    return FAMILIES[name.lower()]
