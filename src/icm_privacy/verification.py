"""Verification at a fixed false-accept rate: impostor pairs, calibrated thresholds, and the two attackers.

An attacker who holds original faces accepts a decoded face as a given person when their cosine
similarity is above a threshold chosen for a target false-accept rate (FAR) f:

- fixed-threshold attacker: the threshold is calibrated on impostor pairs of ORIGINAL faces, as a
  recogniser deployed without knowledge of the codec would be, then applied to decoded probes. Its
  FAR on decoded probes is not f: a codec that makes all faces alike raises a decoded face's
  similarity to other people's originals too. `realised_far` measures what it really gets on the
  decoded-vs-original impostor pairs of the same codec point.
- codec-aware attacker: the threshold is calibrated per codec point on decoded-vs-original impostor
  pairs (a decoded face of one person against the originals of others), so its FAR on such pairs is f.

Both are calibrated out of sample by cross-fitting over images (`cross_fit_thresholds`): images fall
into K folds, and the threshold that scores a face of fold k comes from impostor pairs whose both
images lie outside fold k. The image bootstrap weights calibration pairs, probes and scored impostor
pairs alike by how often their images were drawn. docs/privacy_metrics.md states the definitions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Scale each row to length 1; refuse rows whose cosine similarity is undefined."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (faces, dimensions) array, got shape {embeddings.shape}")
    norms = np.linalg.norm(embeddings, axis=1)
    unusable = ~np.isfinite(norms) | (norms == 0)
    if unusable.any():
        raise ValueError(f"{int(unusable.sum())} embeddings are zero or not finite; cosine similarity is undefined")
    return embeddings / norms[:, None]


# --- thresholds at a false-accept rate ----------------------------------------------------------

def allowed_false_accepts(far: float, impostor_weight: float) -> int:
    """How many impostor pairs may be accepted at this FAR; 0 means the FAR cannot be resolved."""
    if not 0 < far < 1:
        raise ValueError(f"FAR must lie in (0, 1), got {far}")
    return int(np.floor(far * impostor_weight + 1e-9))  # 1e-9: 0.001 * 3000 must give 3, not 2


def _similarity_threshold(ranked_similarity: np.ndarray, pair_weight: np.ndarray, allowed: int) -> float:
    """Similarity of the first pair at which the impostors' cumulative weight exceeds `allowed`.

    Accepting only pairs strictly more similar than it accepts at most `allowed` impostors,
    ties included. NaN when the given pairs weigh `allowed` or less in total.
    """
    index = np.searchsorted(np.cumsum(pair_weight), allowed, side="right")
    return float(ranked_similarity[index]) if index < len(ranked_similarity) else np.nan


def tar_at_far(genuine_similarity: np.ndarray, impostor_similarity: np.ndarray, far: float) -> tuple[float, float]:
    """True-accept rate at the dataset threshold whose false-accept rate is at most `far`.

    Returns (TAR, threshold as cosine distance); accepted means similarity > 1 - threshold.
    Both are NaN when there are fewer than 1/far impostor pairs: the threshold would then be
    the single most similar impostor, not an estimate of the FAR quantile.
    """
    ranked = np.sort(np.asarray(impostor_similarity, dtype=np.float64))[::-1]
    allowed = allowed_false_accepts(far, ranked.size)
    if allowed < 1:
        return np.nan, np.nan
    threshold = _similarity_threshold(ranked, np.ones(ranked.size), allowed)
    return float(np.mean(np.asarray(genuine_similarity) > threshold)), 1.0 - threshold


@dataclass(frozen=True)
class ImpostorPairs:
    """Impostor pairs, most similar first, with the face and images each pair joins.

    Two kinds: pairs of two original faces (unordered, each pair once), and ordered pairs of a
    decoded probe face against another person's original face. The image codes let a bootstrap
    resample, or a cross-fitting fold, weight each pair by how often both its images were drawn.
    """

    similarity: np.ndarray  # (pairs,), descending
    face_a: np.ndarray  # (pairs,) index of the first face: the probe, for ordered pairs
    image_a: np.ndarray  # (pairs,) image code of face_a
    image_b: np.ndarray  # (pairs,) image code of the other face
    faces_per_image: np.ndarray  # (images,) faces of the analysed set in each image
    same_identity_a: np.ndarray  # cross-image pairs left out because labels make them one person
    same_identity_b: np.ndarray
    ordered: bool  # (a, b) and (b, a) are two pairs: decoded probe vs original

    @property
    def count(self) -> int:
        return len(self.similarity)

    def weight(self, image_counts: np.ndarray) -> int:
        """Total weight of all impostor pairs when image i is drawn image_counts[i] times.

        All cross-image face pairs, (sum of faces)^2 minus same-image terms (halved for unordered
        pairs), less the pairs that labels declare the same person; O(images), not O(pairs).
        """
        faces_drawn = image_counts * self.faces_per_image
        cross_image = faces_drawn.sum() ** 2 - (faces_drawn**2).sum()
        if not self.ordered:
            cross_image //= 2
        same_identity = (image_counts[self.same_identity_a] * image_counts[self.same_identity_b]).sum()
        return int(cross_image - same_identity)

    def similarity_threshold(self, far: float, image_counts: np.ndarray) -> float:
        """Similarity threshold at `far` for one draw of images (all ones: the dataset itself; zeros
        leave images out); NaN if unresolvable."""
        allowed = allowed_false_accepts(far, self.weight(image_counts))
        if allowed < 1:
            return np.nan
        # The threshold sits near rank far * pairs; scan a generous head first, all pairs only if a draw needs it.
        head = min(self.count, int(4 * far * self.count) + 1024)
        for stop in (head, self.count):
            pair_weight = image_counts[self.image_a[:stop]] * image_counts[self.image_b[:stop]]
            threshold = _similarity_threshold(self.similarity[:stop], pair_weight, allowed)
            if not np.isnan(threshold):
                return threshold
        return np.nan


def impostor_pairs(
    original: np.ndarray, image_codes: np.ndarray, identity_codes: np.ndarray, n_images: int,
    probes: np.ndarray | None = None,
) -> ImpostorPairs:
    """Pairs of faces from different images that are not labelled as the same person.

    Without `probes`: pairs of two original faces. With `probes` (decoded faces, row-aligned with
    `original`): every decoded face against every other person's original, as ordered pairs.
    Faces of one image are different people but never impostor pairs: they share lighting, camera
    and compression, which would make impostors look alike for reasons unrelated to identity.
    Memory is O(faces^2); fine up to about 10,000 faces.
    """
    image_codes = np.asarray(image_codes)
    identity_codes = np.asarray(identity_codes)
    if probes is None:
        first, second = np.triu_indices(len(image_codes), k=1)
    else:
        first, second = (index.ravel() for index in np.indices((len(image_codes),) * 2))
    cross_image = image_codes[first] != image_codes[second]
    same_identity = identity_codes[first] == identity_codes[second]
    impostor = cross_image & ~same_identity
    first_i, second_i = first[impostor], second[impostor]
    similarity = (unit_rows(original if probes is None else probes) @ unit_rows(original).T)[first_i, second_i]
    order = np.argsort(-similarity, kind="stable")
    excluded = cross_image & same_identity
    return ImpostorPairs(
        similarity=similarity[order],
        face_a=first_i[order],
        image_a=image_codes[first_i][order],
        image_b=image_codes[second_i][order],
        faces_per_image=np.bincount(image_codes, minlength=n_images),
        same_identity_a=image_codes[first[excluded]],
        same_identity_b=image_codes[second[excluded]],
        ordered=probes is not None,
    )


# --- attackers calibrated out of sample ---------------------------------------------------------

def image_folds(n_images: int, folds: int, seed: int | None) -> np.ndarray:
    """Fold of each image (balanced, in a seeded random order); fewer folds when images are fewer (one
    image: one fold, which leaves no pairs to calibrate on, so the attackers' values are NaN with a note)."""
    return np.random.default_rng(seed).permutation(np.arange(n_images) % max(1, min(folds, n_images)))


@dataclass(frozen=True)
class CrossFitThresholds:
    """The similarity threshold that scores each face, calibrated on the folds without that face's image."""

    per_face: np.ndarray  # (faces,) on the dataset
    resampled: np.ndarray  # (resamples, faces) in each bootstrap draw of images
    fewest_pairs: int  # calibration pairs of the smallest calibration set (NaN thresholds below 1/FAR)


def cross_fit_thresholds(pairs: ImpostorPairs, far: float, face_images: np.ndarray, folds: np.ndarray,
                         image_counts: np.ndarray) -> CrossFitThresholds:
    """Thresholds at `far` for the faces of each fold k, from the impostor pairs whose both images lie
    outside fold k: no face's own pairs (genuine or impostor) set the threshold that scores it."""
    dataset = np.ones(len(folds), dtype=np.int64)
    per_fold, resampled, fewest = [], [], None
    for fold in range(folds.max() + 1):
        outside = (folds != fold).astype(np.int64)
        per_fold.append(pairs.similarity_threshold(far, dataset * outside))
        resampled.append([pairs.similarity_threshold(far, counts * outside) for counts in image_counts])
        weight = pairs.weight(outside)
        fewest = weight if fewest is None else min(fewest, weight)
    face_folds = folds[face_images]
    return CrossFitThresholds(np.asarray(per_fold)[face_folds], np.asarray(resampled).T[:, face_folds], fewest)


def realised_far(pairs: ImpostorPairs, thresholds: CrossFitThresholds, probe_mask: np.ndarray,
                 image_counts: np.ndarray) -> tuple[float, np.ndarray]:
    """Share of the ordered impostor pairs of the probes in `probe_mask` that the attacker accepts.

    Each pair is scored with its probe's threshold, so the pairs that calibrated it are never among
    them. Returns the value on the dataset and one per bootstrap resample (NaN where undefined).
    """
    scored = probe_mask[pairs.face_a]
    similarity, probe = pairs.similarity[scored], pairs.face_a[scored]
    image_a, image_b = pairs.image_a[scored], pairs.image_b[scored]
    with np.errstate(invalid="ignore"):
        point = float(np.mean(similarity > thresholds.per_face[probe])) if scored.any() else np.nan
    replicates = np.full(len(image_counts), np.nan)
    chunk = max(1, 20_000_000 // max(1, scored.sum()))  # bounds the (resamples, pairs) arrays' memory
    for start in range(0, len(image_counts), chunk):
        counts = image_counts[start:start + chunk]
        weight = counts[:, image_a] * counts[:, image_b]
        accepted = similarity[None, :] > thresholds.resampled[start:start + chunk][:, probe]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (weight * accepted).sum(axis=1) / weight.sum(axis=1)
        undefined = np.isnan(thresholds.resampled[start:start + chunk][:, probe]).any(axis=1)
        replicates[start:start + chunk] = np.where(undefined, np.nan, share)
    return point, replicates
