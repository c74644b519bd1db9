"""Today's straightforward privacy metrics, kept as the test oracle for the scalable ones.

These are the versions of `ImpostorPairs`, `impostor_pairs`, `cross_fit_thresholds`, `realised_far` and
`privacy_table` (with its helpers `_Attackers`, `_bin_metrics`, `_notes`) that src/icm_privacy had before
they were rewritten to scale, moved here unchanged (only their imports point at the package). They are the
reference the tests compare the package against, not production code: `realised_far` costs
O(resamples x faces^2) per bin, so keep their inputs small.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from icm_privacy.privacy import (
    CROSS_FIT_FOLDS,
    DEEPFACE_COSINE_THRESHOLDS,
    DEFAULT_FARS,
    DEFAULT_RANKS,
    FACE_SIZE_EDGES,
    CONFIDENCE_BAND_EDGES,
    _breakdown_masks,
    _check_inputs,
    bootstrap_face_mean,
    bootstrap_image_counts,
    face_identities,
    far_label,
    identification_ranks,
    metric_columns,
    paired_similarity,
    percentile_interval,
    verified_at_distance,
)
from icm_privacy.verification import _similarity_threshold, allowed_false_accepts, image_folds, unit_rows


@dataclass(frozen=True)
class ImpostorPairs:
    """As before the scalable rewrite (its docstring is in the git history)."""

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
        """As before the scalable rewrite (its docstring is in the git history)."""
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
    """As before the scalable rewrite (its docstring is in the git history)."""
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
    """As before the scalable rewrite (its docstring is in the git history)."""
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


@dataclass(frozen=True)
class _Attackers:
    """Both attackers' cross-fitted thresholds at one FAR, and the decoded-vs-original impostor pairs
    their realised FAR is measured on."""

    fixed: CrossFitThresholds  # calibrated on original-vs-original impostor pairs
    aware: CrossFitThresholds  # calibrated on this codec point's decoded-vs-original impostor pairs
    probe_pairs: ImpostorPairs


def _estimate(name: str, point: float, replicates: np.ndarray) -> dict[str, float]:
    low, high = percentile_interval(replicates)
    return {name: point, f"{name}_ci_low": low, f"{name}_ci_high": high}


def _bin_metrics(
    similarity: np.ndarray,
    ranks: np.ndarray,
    face_images: np.ndarray,
    in_bin: np.ndarray,
    published_threshold: float,
    attackers: Mapping[float, _Attackers],
    image_counts: np.ndarray,
    rank_cutoffs: Sequence[int],
) -> dict[str, float]:
    """Point estimates and bootstrap intervals of every metric over the faces in_bin (at least one)."""
    similarity, ranks, face_images = similarity[in_bin], ranks[in_bin], face_images[in_bin]
    reid_published = (
        verified_at_distance(similarity, published_threshold).astype(float)
        if np.isfinite(published_threshold) else np.full(len(similarity), np.nan)
    )
    per_face = {
        "mean_cosine": similarity,
        "reid_published": reid_published,
        **{f"rank{k}": (ranks <= k).astype(float) for k in rank_cutoffs},
    }
    row: dict[str, float] = {}
    for name, values in per_face.items():
        row.update(_estimate(name, float(values.mean()), bootstrap_face_mean(values, face_images, image_counts)))
    for far, attacker in attackers.items():
        for kind, thresholds in (("fixed", attacker.fixed), ("aware", attacker.aware)):
            threshold, resampled = thresholds.per_face[in_bin], thresholds.resampled[:, in_bin]
            accepted = (similarity[None, :] > resampled).astype(float)
            replicates = np.where(np.isnan(resampled).any(axis=1), np.nan,
                                  bootstrap_face_mean(accepted, face_images, image_counts))
            point = float(np.mean(similarity > threshold)) if np.isfinite(threshold).all() else np.nan
            row.update(_estimate(f"tar_{kind}_{far_label(far)}", point, replicates))
            row.update(_estimate(f"realised_far_{kind}_{far_label(far)}",
                                 *realised_far(attacker.probe_pairs, thresholds, in_bin, image_counts)))
    return row


def _notes(model: str, published_threshold: float, dataset_thresholds: Mapping[float, float], pairs: int,
           attackers: Mapping[float, _Attackers], n_faces: int) -> str:
    """Why values in a row are NaN, '; '-separated ('' when none are)."""
    notes = [] if n_faces else ["no faces in this bin"]
    if np.isnan(published_threshold):
        notes.append(f"no published cosine threshold for {model}")
    for far, threshold in dataset_thresholds.items():
        needed = int(np.ceil(1 / far - 1e-9))
        if np.isnan(threshold):
            notes.append(f"FAR {far:g} needs >= {needed} impostor pairs, {pairs} available")
        fewest = min(attackers[far].fixed.fewest_pairs, attackers[far].aware.fewest_pairs)
        if fewest < needed:
            notes.append(f"FAR {far:g} attackers need >= {needed} impostor pairs per cross-fitting calibration set, "
                         f"the smallest has {fewest}")
    return "; ".join(notes)


def privacy_table(
    faces: pd.DataFrame,
    original_embeddings: Mapping[str, np.ndarray],
    decoded_embeddings: Mapping[tuple[str, Hashable], Mapping[str, np.ndarray]],
    mean_bpp: Mapping[tuple[str, Hashable], float],
    *,
    confidence_thresholds: Sequence[float] = (0.0,),
    identity_labels: Mapping[str, Hashable] | None = None,
    fars: Sequence[float] = DEFAULT_FARS,
    ranks: Sequence[int] = DEFAULT_RANKS,
    size_edges: Sequence[float] = FACE_SIZE_EDGES,
    confidence_edges: Sequence[float] = CONFIDENCE_BAND_EDGES,
    published_thresholds: Mapping[str, float] = DEEPFACE_COSINE_THRESHOLDS,
    n_resamples: int = 1000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """As before the scalable rewrite (its docstring is in the git history)."""
    _check_inputs(faces, original_embeddings, decoded_embeddings, mean_bpp)
    image_codes, images = pd.factorize(faces["image"])
    identities = face_identities(faces, identity_labels)
    image_counts = bootstrap_image_counts(len(images), n_resamples, seed)
    folds = image_folds(len(images), CROSS_FIT_FOLDS, seed)
    dataset = np.ones(len(images), dtype=np.int64)
    confidence = faces["confidence"].to_numpy(dtype=np.float64)
    breakdown_masks = _breakdown_masks(faces, size_edges, confidence_edges)
    rows = []
    for model, original in original_embeddings.items():
        published = float(published_thresholds.get(model, np.nan))
        original = np.asarray(original)
        for min_confidence in confidence_thresholds:
            kept = confidence >= min_confidence
            if not kept.any():
                raise ValueError(f"no face has confidence >= {min_confidence}")
            codes, kept_identities = image_codes[kept], identities[kept]
            pairs = impostor_pairs(original[kept], codes, kept_identities, len(images))
            dataset_thresholds = {far: pairs.similarity_threshold(far, dataset) for far in fars}
            fixed = {far: cross_fit_thresholds(pairs, far, codes, folds, image_counts) for far in fars}
            analysed_set = {
                "model": model, "min_confidence": min_confidence,
                "gallery_size": int(kept.sum()), "impostor_pairs": pairs.count,
                "distance_threshold_published": published,
                **{f"distance_threshold_{far_label(far)}": 1.0 - threshold
                   for far, threshold in dataset_thresholds.items()},
            }
            for (codec, quality), per_model in decoded_embeddings.items():
                decoded = np.asarray(per_model[model])[kept]
                similarity = paired_similarity(original[kept], decoded)
                probe_ranks = identification_ranks(decoded, original[kept], kept_identities, kept_identities)
                probe_pairs = impostor_pairs(original[kept], codes, kept_identities, len(images), probes=decoded)
                attackers = {far: _Attackers(fixed[far], cross_fit_thresholds(probe_pairs, far, codes, folds,
                                                                              image_counts), probe_pairs)
                             for far in fars}
                for breakdown, name, in_bin in breakdown_masks:
                    in_bin = in_bin[kept]
                    n_faces = int(in_bin.sum())
                    row = {
                        "codec": codec, "quality": quality, "bpp": float(mean_bpp[(codec, quality)]),
                        **analysed_set, "breakdown": breakdown, "bin": name,
                        "n_faces": n_faces, "n_images": len(np.unique(codes[in_bin])),
                    }
                    if n_faces:
                        row.update(_bin_metrics(similarity, probe_ranks, codes, in_bin, published, attackers,
                                                image_counts, ranks))
                    note = _notes(model, published, dataset_thresholds, pairs.count, attackers, n_faces)
                    rows.append({**row, "note": note})
    metrics = [f"{m}{suffix}" for m in metric_columns(fars, ranks) for suffix in ("", "_ci_low", "_ci_high")]
    leading = [column for column in rows[0] if column not in metrics and column != "note"]
    return pd.DataFrame(rows).reindex(columns=[*leading, *metrics, "note"])
