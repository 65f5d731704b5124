"""How alike two models' representations are: linear CKA and mean canonical correlation of per-atom features."""

from __future__ import annotations

import numpy as np

from mfff.errors import UserError


def _centred(features, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"{name} must be (samples, features) with at least 2 samples, got shape {features.shape}")
    return features - features.mean(axis=0, keepdims=True)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise UserError(
            f"the two representations cover different atoms ({x.shape[0]} vs {y.shape[0]}); compare checkpoints "
            "on the same structures"
        )


def linear_cka(x, y) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019) of two (samples, features) matrices:
    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F). 1 for representations equal up to an orthogonal map and an
    isotropic scale; the feature counts may differ."""
    x, y = _centred(x, "x"), _centred(y, "y")
    _check_pair(x, y)
    cross = np.linalg.norm(y.T @ x) ** 2
    norms = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    if norms == 0:
        raise UserError("a representation is constant over the samples; CKA is undefined for it")
    return float(cross / norms)


def mean_cca(x, y, rank: int | None = None) -> float:
    """Mean squared canonical correlation of the top `rank` directions (default: the smaller feature count after
    dropping directions without variance). Invariant to any invertible linear map of either representation."""
    x, y = _centred(x, "x"), _centred(y, "y")
    _check_pair(x, y)

    def basis(a):
        u, s, _ = np.linalg.svd(a, full_matrices=False)
        return u[:, s > s.max() * 1e-10]

    qx, qy = basis(x), basis(y)
    correlations = np.linalg.svd(qx.T @ qy, compute_uv=False)
    rank = min(qx.shape[1], qy.shape[1]) if rank is None else rank
    return float(np.mean(correlations[:rank] ** 2))
