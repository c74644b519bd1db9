"""The embedding-adapter attacker's map: ridge regression from the embeddings of decoded face crops to
those of the original crops, learnt on faces the attacker coded itself (coco-train2017, never an
evaluated face), then applied to the evaluated decoded faces before they are matched.

The map predicts the *change* a codec made, original - decoded, from the decoded embedding, so the ridge
penalty shrinks it toward the identity map (no adaptation: the naive attacker) rather than toward zero.
The penalty is chosen from a grid, scaled by the decoded embeddings' mean variance so that one grid fits
every face model, by cross-validation over images (a face's image never lies in the fold that scores
it), maximising the held-out mean cosine similarity of adapted faces to their originals.
scikit-learn's estimator shape: hyper-parameters in the constructor, `fit` returns self, learned state
in attributes ending in `_`.
"""
from __future__ import annotations

import numpy as np

from .verification import unit_rows

# The last, infinite penalty is no adaptation at all (the naive attacker's probes), so cross-validation
# can keep it where a few faces would teach the map only noise.
RELATIVE_PENALTIES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, np.inf)


def _ridge(decoded: np.ndarray, change: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and intercept of ridge regression of `change` on `decoded` (intercept not penalised);
    an infinite penalty is no change."""
    if np.isinf(penalty):
        return np.zeros((decoded.shape[1], change.shape[1])), np.zeros(change.shape[1])
    mean_decoded, mean_change = decoded.mean(axis=0), change.mean(axis=0)
    centred = decoded - mean_decoded
    gram = centred.T @ centred + penalty * np.eye(decoded.shape[1])
    coef = np.linalg.solve(gram, centred.T @ (change - mean_change))
    return coef, mean_change - mean_decoded @ coef


def _mean_cosine(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", unit_rows(first), unit_rows(second)).mean())


class EmbeddingAdapter:
    """Linear map decoded -> original embedding, ridge-shrunk toward the identity (see the module).

    Hyper-parameters: `relative_penalties` (the grid, times the decoded embeddings' mean variance),
    `folds` of images for choosing one (fewer when there are fewer images), `seed` of the fold assignment. Learned: `coef_` (d x d) and
    `intercept_` (d,) of the change, `penalty_` (absolute) and `relative_penalty_`, and the held-out
    mean cosine to the originals of the decoded faces (`cv_cosine_decoded_`) and of the adapted ones at
    the chosen penalty (`cv_cosine_adapted_`).
    """

    def __init__(self, relative_penalties=RELATIVE_PENALTIES, folds: int = 5, seed: int = 0):
        self.relative_penalties, self.folds, self.seed = tuple(relative_penalties), folds, seed

    def fit(self, decoded: np.ndarray, original: np.ndarray, images: np.ndarray) -> EmbeddingAdapter:
        """decoded, original: (faces, d), row-aligned; images: each face's image (the cross-validation groups)."""
        decoded, original = np.asarray(decoded, dtype=np.float64), np.asarray(original, dtype=np.float64)
        if decoded.shape != original.shape or decoded.ndim != 2 or len(images) != len(decoded):
            raise ValueError(f"decoded {decoded.shape}, original {original.shape} and {len(images)} image ids "
                             "must describe the same faces")
        groups, codes = np.unique(np.asarray(images), return_inverse=True)
        folds = min(self.folds, len(groups))  # a fold per image when there are fewer images than folds
        if folds < 2:
            raise ValueError(f"the adapter's cross-validation needs faces of at least 2 images, got {len(groups)}")
        fold_of_face = np.random.default_rng(self.seed).permutation(np.arange(len(groups)) % folds)[codes]
        scale = float(decoded.var(axis=0).sum())  # trace of the covariance: penalties scale with the model
        change = original - decoded
        held_out = {relative: [] for relative in self.relative_penalties}
        for fold in range(folds):
            train, test = fold_of_face != fold, fold_of_face == fold
            for relative in self.relative_penalties:
                coef, intercept = _ridge(decoded[train], change[train], relative * scale)
                held_out[relative].append(decoded[test] + decoded[test] @ coef + intercept)
        order = np.concatenate([np.flatnonzero(fold_of_face == fold) for fold in range(folds)])
        scores = {relative: _mean_cosine(np.concatenate(adapted), original[order])
                  for relative, adapted in held_out.items()}
        self.relative_penalty_ = max(scores, key=scores.get)
        self.penalty_ = self.relative_penalty_ * scale
        self.coef_, self.intercept_ = _ridge(decoded, change, self.penalty_)
        self.cv_cosine_decoded_ = _mean_cosine(decoded, original)
        self.cv_cosine_adapted_ = scores[self.relative_penalty_]
        return self

    def transform(self, decoded: np.ndarray) -> np.ndarray:
        """Probe embeddings: the decoded embeddings moved by the learnt change."""
        decoded = np.asarray(decoded, dtype=np.float64)
        return decoded + decoded @ self.coef_ + self.intercept_


LEARNED = ("coef_", "intercept_", "penalty_", "relative_penalty_", "cv_cosine_decoded_", "cv_cosine_adapted_")


def save_adapters(adapters: dict[str, EmbeddingAdapter], path) -> None:
    """One codec point's fitted adapters, one per face model, in one .npz (written atomically)."""
    from .files import atomic_path

    arrays = {f"{model}/{name}": np.asarray(getattr(adapter, name)) for model, adapter in adapters.items()
              for name in LEARNED}
    with atomic_path(path) as temporary:
        np.savez(temporary, **arrays)


def load_adapters(path) -> dict[str, EmbeddingAdapter]:
    """Face model -> its fitted adapter, from a file of save_adapters."""
    adapters: dict[str, EmbeddingAdapter] = {}
    with np.load(path) as data:
        for key in data.files:
            model, _, name = key.rpartition("/")
            if name not in LEARNED:
                raise ValueError(f"{path}: {key!r} is not a fitted adapter's array")
            adapter = adapters.setdefault(model, EmbeddingAdapter())
            value = data[key]
            setattr(adapter, name, value if value.ndim else float(value))
    return adapters
