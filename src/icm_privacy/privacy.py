"""Privacy metrics: how well face models re-identify decoded faces against their originals.

Every metric compares, per face, the embedding of the crop from a decoded image with the
embedding of the same box cropped from the original. Definitions, assumptions, tie rules and
the sources of the published thresholds are in docs/privacy_metrics.md.

Conventions used throughout:
- similarity is cosine similarity; thresholds are reported as cosine distance (1 - similarity),
  the unit DeepFace publishes them in;
- uncertainty is a percentile bootstrap over images (faces of one image stay together), with one
  set of resamples shared by every row of a table, so rows are compared on the same resamples.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from .bd_metrics import bd_metric_difference
from .verification import (
    CrossFitThresholds,
    cross_fit_thresholds,
    image_folds,
    impostor_pairs,
    realised_far,
    unit_rows,
)

# DeepFace's cosine-distance thresholds (deepface 0.0.103, deepface/config/threshold.py, read by
# deepface.modules.verification.find_threshold); a pair verifies when distance <= threshold.
DEEPFACE_COSINE_THRESHOLDS: dict[str, float] = {
    "VGG-Face": 0.68,
    "Facenet": 0.40,
    "Facenet512": 0.30,
    "ArcFace": 0.68,
    "Dlib": 0.07,
    "SFace": 0.593,
    "OpenFace": 0.10,
    "DeepFace": 0.23,
    "DeepID": 0.015,
    "GhostFaceNet": 0.65,
    "Buffalo_L": 0.55,
}

FACE_SIZE_EDGES = (32, 64, 128)  # px of the box's short side: <32, 32-64, 64-128, >=128
CONFIDENCE_BAND_EDGES = (0.95, 0.99)  # MTCNN confidence: <0.95, 0.95-0.99, >=0.99
DEFAULT_FARS = (1e-2, 1e-3)
DEFAULT_RANKS = (1, 5)
CROSS_FIT_FOLDS = 5  # the thresholds that score one fold of images come from the other four
# Per FAR: each attacker's true-accept rate and the false-accept rate it realises on decoded probes.
ATTACKER_METRICS = ("tar_fixed", "realised_far_fixed", "tar_aware", "realised_far_aware")
CI_LEVEL = 0.95

FACE_COLUMNS = ("face_id", "image", "confidence", "short_side")
GROUP_COLUMNS = ("model", "min_confidence", "breakdown", "bin")


# --- embeddings and per-face scores -------------------------------------------------------------

def paired_similarity(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Cosine similarity of each decoded face to its own original (rows aligned)."""
    if np.shape(original) != np.shape(decoded):
        raise ValueError(f"original {np.shape(original)} and decoded {np.shape(decoded)} embeddings differ in shape")
    return np.einsum("ij,ij->i", unit_rows(original), unit_rows(decoded))


def verified_at_distance(similarity: np.ndarray, distance_threshold: float) -> np.ndarray:
    """Per pair: does DeepFace's rule `1 - similarity <= threshold` call it the same person?"""
    return 1.0 - np.asarray(similarity) <= distance_threshold


def identification_ranks(
    probes: np.ndarray, gallery: np.ndarray, probe_identity: np.ndarray, gallery_identity: np.ndarray
) -> np.ndarray:
    """Closed-set rank of each probe: 1 + number of wrong gallery entries more similar than its best correct one.

    Ties go to the attacker (a wrong entry only outranks when strictly more similar): a privacy
    measurement should not report less re-identification than an attacker would get.
    """
    similarity = unit_rows(probes) @ unit_rows(gallery).T
    correct = np.asarray(probe_identity)[:, None] == np.asarray(gallery_identity)[None, :]
    if not correct.any(axis=1).all():
        raise ValueError("closed-set identification needs every probe's identity in the gallery")
    best_correct = np.where(correct, similarity, -np.inf).max(axis=1)
    return 1 + np.count_nonzero((similarity > best_correct[:, None]) & ~correct, axis=1)


# --- bootstrap over images ----------------------------------------------------------------------

def bootstrap_image_counts(n_images: int, n_resamples: int, seed: int | None) -> np.ndarray:
    """(n_resamples, n_images): how often each image is drawn when n_images are drawn with replacement."""
    if n_images < 1:
        raise ValueError("the bootstrap needs at least one image")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_resamples)


def bootstrap_face_mean(values: np.ndarray, face_images: np.ndarray, image_counts: np.ndarray) -> np.ndarray:
    """Mean of per-face `values` in each resample, every face weighted by how often its image was drawn.

    `values` is (faces,) or, when the value itself depends on the resample, (resamples, faces).
    A resample that drew none of these faces gives NaN.
    """
    face_weight = image_counts[:, face_images]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (face_weight * values).sum(axis=1) / face_weight.sum(axis=1)


def percentile_interval(replicates: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval, ignoring resamples where the statistic is undefined."""
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.nan, np.nan
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


# --- faces: identities and breakdown bins -------------------------------------------------------

def face_identities(faces: pd.DataFrame, identity_labels: Mapping[str, Hashable] | None = None) -> np.ndarray:
    """Integer identity per face: labels keyed by face id win over labels keyed by image id.

    An unlabelled face is its own identity (assumed to be a person seen nowhere else).
    """
    labels = dict(identity_labels or {})
    keys = [
        ("label", labels[face]) if face in labels else ("label", labels[image]) if image in labels else ("face", face)
        for face, image in zip(faces["face_id"], faces["image"])
    ]
    return pd.factorize(pd.Series(keys, dtype=object))[0]


def bin_names(edges: Sequence[float]) -> list[str]:
    """'<e0', 'e0-e1', ..., '>=ek' for increasing edges; each bin holds its lower edge."""
    names = [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:])]
    return [f"<{edges[0]:g}", *names, f">={edges[-1]:g}"]


def bin_labels(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Name of the bin (see bin_names) each value falls in."""
    return np.asarray(bin_names(edges))[np.searchsorted(edges, values, side="right")]


# --- the tidy table -----------------------------------------------------------------------------

def far_label(far: float) -> str:
    """Column suffix for a FAR: 0.01 -> 'far_0.01'."""
    return f"far_{far:g}"


def metric_columns(fars: Sequence[float] = DEFAULT_FARS, ranks: Sequence[int] = DEFAULT_RANKS) -> list[str]:
    """The metric columns of privacy_table, each also present with _ci_low and _ci_high."""
    return ["mean_cosine", "reid_published", *[f"{m}_{far_label(far)}" for far in fars for m in ATTACKER_METRICS],
            *[f"rank{k}" for k in ranks]]


# Per attacker: its infix in the column names and its name in notes.
ATTACKERS = {"fixed": "fixed-threshold", "aware": "codec-aware"}


def _estimate(name: str, point: float, replicates: np.ndarray) -> dict[str, float]:
    low, high = percentile_interval(replicates)
    return {name: point, f"{name}_ci_low": low, f"{name}_ci_high": high}


def _bin_rates(values: np.ndarray, bins: np.ndarray, face_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of per-face 0/1 values in each bin, on the dataset (bins,) and per bootstrap resample (bins,
    resamples), each face weighted by how often its image was drawn (face_weight: resamples x faces).

    The same numbers as `values[in_bin].mean()` and bootstrap_face_mean bin by bin: the sums are of
    integers, exact in float64 in any order. NaN values leave every bin NaN.
    """
    if np.isnan(values).any():
        return np.full(len(bins), np.nan), np.full((len(bins), len(face_weight)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (bins @ values) / bins.sum(axis=1), (bins @ (face_weight * values).T) / (bins @ face_weight.T)


def _true_accepts(similarity: np.ndarray, thresholds: CrossFitThresholds, bins: np.ndarray,
                  face_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TAR of each bin's genuine pairs, on the dataset (bins,) and per resample (bins, resamples). NaN
    throughout for a bin with a probe scored with an undefined threshold; a resample is NaN where it
    leaves one undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        point = (bins @ (similarity > thresholds.per_face)) / bins.sum(axis=1)
        replicates = (bins @ (face_weight * (similarity[None, :] > thresholds.resampled)).T) / (bins @ face_weight.T)
    replicates[bins @ np.isnan(thresholds.resampled).T > 0] = np.nan
    undefined = bins @ np.isnan(thresholds.per_face) > 0
    point[undefined] = np.nan
    replicates[undefined] = np.nan
    return point, replicates


def _bin_metrics(similarity: np.ndarray, face_images: np.ndarray, bin_index: int, in_bin: np.ndarray,
                 rates: Mapping[str, tuple[np.ndarray, np.ndarray]], image_counts: np.ndarray) -> dict[str, float]:
    """Point estimates and bootstrap intervals of every metric over the faces in_bin (at least one):
    mean_cosine here, the rates from their (bins,) points and (bins, resamples) replicates."""
    row = _estimate("mean_cosine", float(similarity[in_bin].mean()),
                    bootstrap_face_mean(similarity[in_bin], face_images[in_bin], image_counts))
    for name, (points, replicates) in rates.items():
        row.update(_estimate(name, float(points[bin_index]), replicates[bin_index]))
    return row


def _notes(model: str, published_threshold: float, dataset_thresholds: Mapping[float, float], pairs: int,
           attackers: Mapping[tuple[float, str], CrossFitThresholds], in_bin: np.ndarray) -> str:
    """Why values in a row are NaN, '; '-separated ('' when none are)."""
    notes = [] if in_bin.any() else ["no faces in this bin"]
    if np.isnan(published_threshold):
        notes.append(f"no published cosine threshold for {model}")
    for far, threshold in dataset_thresholds.items():
        needed = int(np.ceil(1 / far - 1e-9))
        if np.isnan(threshold):
            notes.append(f"FAR {far:g} needs >= {needed} impostor pairs, {pairs} available")
        for kind, name in ATTACKERS.items():
            thresholds = attackers[far, kind]
            scoring = np.unique(thresholds.face_folds[in_bin])  # the calibration sets that score this bin
            if np.isnan(thresholds.per_fold[scoring]).any():
                notes.append(f"FAR {far:g} {name} attacker needs >= {needed} impostor pairs per cross-fitting "
                             f"calibration set, the smallest has {thresholds.calibration_pairs[scoring].min()}")
    return "; ".join(notes)


def _breakdown_masks(
    faces: pd.DataFrame, size_edges: Sequence[float], confidence_edges: Sequence[float]
) -> list[tuple[str, str, np.ndarray]]:
    """(breakdown, bin, faces in it) for 'all' and every face-size and confidence bin, empty bins included."""
    masks = [("all", "all", np.ones(len(faces), dtype=bool))]
    for breakdown, column, edges in (
        ("face_size", "short_side", size_edges), ("confidence_band", "confidence", confidence_edges)
    ):
        labels = bin_labels(faces[column].to_numpy(dtype=np.float64), edges)
        masks += [(breakdown, name, labels == name) for name in bin_names(edges)]
    return masks


def _check_inputs(faces: pd.DataFrame, original_embeddings, decoded_embeddings, mean_bpp) -> None:
    missing = [column for column in FACE_COLUMNS if column not in faces.columns]
    if missing:
        raise ValueError(f"faces table lacks columns {missing}")
    if len(faces) == 0 or not faces["face_id"].is_unique:
        raise ValueError("faces table must have at least one face and unique face_id values")
    if not original_embeddings or not decoded_embeddings:
        raise ValueError("need at least one face model and one codec point")
    for point, per_model in decoded_embeddings.items():
        if point not in mean_bpp:
            raise ValueError(f"no mean bpp for codec point {point}")
        for model, original in original_embeddings.items():
            if model not in per_model:
                raise ValueError(f"codec point {point} has no {model} embeddings")
            if np.shape(per_model[model]) != np.shape(original) or len(original) != len(faces):
                raise ValueError(
                    f"{model} at {point}: decoded {np.shape(per_model[model])} and original {np.shape(original)} "
                    f"embeddings must both have one row per face ({len(faces)})"
                )


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
    """One row per codec point x face model x confidence threshold x breakdown bin.

    faces: one row per face (face_id, image, confidence, short_side); embeddings are aligned with it.
    original_embeddings: model -> (faces, d); decoded_embeddings: (codec, quality) -> model -> (faces, d).
    mean_bpp: (codec, quality) -> mean bpp of that point (the curves' x axis).
    identity_labels: optional face id or image id -> person.
    Faces with confidence >= a threshold form that threshold's analysed set: probes, gallery and
    impostor pairs all come from it. Breakdown bins ('face_size', 'confidence_band', and
    'all'/'all') restrict the probes only; gallery and calibrated thresholds stay the set's.

    Columns: codec, quality, bpp, model, min_confidence, gallery_size, impostor_pairs,
    distance_threshold_published, distance_threshold_far_<FAR>..., breakdown, bin, n_faces,
    n_images, then each of metric_columns(fars, ranks) followed by its _ci_low and _ci_high, and
    note (why values are NaN). distance_threshold_far_<FAR> is calibrated on all original-vs-original
    impostor pairs of the analysed set (descriptive); the attackers' TAR and realised FAR use
    thresholds cross-fitted over CROSS_FIT_FOLDS folds of images (verification.py).
    """
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
            bins = np.stack([in_bin[kept] for _, _, in_bin in breakdown_masks])  # (bins, faces of the set)
            bin_weights = bins.astype(np.float64)  # sums of integers through it are exact
            face_weight = image_counts[:, codes].astype(np.float64)  # (resamples, faces): draws of each face's image
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
                reid_published = (verified_at_distance(similarity, published).astype(float) if np.isfinite(published)
                                  else np.full(len(similarity), np.nan))
                rates = {"reid_published": _bin_rates(reid_published, bin_weights, face_weight),
                         **{f"rank{k}": _bin_rates((probe_ranks <= k).astype(float), bin_weights, face_weight)
                            for k in ranks}}
                probe_pairs = impostor_pairs(original[kept], codes, kept_identities, len(images), probes=decoded)
                attackers = {}
                for far in fars:
                    aware = cross_fit_thresholds(probe_pairs, far, codes, folds, image_counts)
                    for kind, thresholds in (("fixed", fixed[far]), ("aware", aware)):
                        attackers[far, kind] = thresholds
                        rates[f"tar_{kind}_{far_label(far)}"] = _true_accepts(similarity, thresholds, bin_weights,
                                                                              face_weight)
                        rates[f"realised_far_{kind}_{far_label(far)}"] = realised_far(probe_pairs, thresholds, bins,
                                                                                      image_counts)
                del probe_pairs
                for index, (breakdown, name, _) in enumerate(breakdown_masks):
                    in_bin = bins[index]
                    n_faces = int(in_bin.sum())
                    row = {
                        "codec": codec, "quality": quality, "bpp": float(mean_bpp[(codec, quality)]),
                        **analysed_set, "breakdown": breakdown, "bin": name,
                        "n_faces": n_faces, "n_images": len(np.unique(codes[in_bin])),
                    }
                    if n_faces:
                        row.update(_bin_metrics(similarity, codes, index, in_bin, rates, image_counts))
                    note = _notes(model, published, dataset_thresholds, pairs.count, attackers, in_bin)
                    rows.append({**row, "note": note})
    metrics = [f"{m}{suffix}" for m in metric_columns(fars, ranks) for suffix in ("", "_ci_low", "_ci_high")]
    leading = [column for column in rows[0] if column not in metrics and column != "note"]
    return pd.DataFrame(rows).reindex(columns=[*leading, *metrics, "note"])


def bd_difference_table(table: pd.DataFrame, metrics: Sequence[str], reference_codec: str,
                        axis: str = "bpp") -> pd.DataFrame:
    """BD metric difference of every codec against `reference_codec`, per model/threshold/bin and metric.

    table: privacy_table's output; `axis` is the column the metric is compared at equal values of:
    `bpp` (log scale) or a linear one such as detection `map` (the privacy-utility frontier).
    Columns: model, min_confidence, breakdown, bin, codec, reference_codec, axis, metric,
    bd_difference, reason.
    """
    rows = []
    for group, curves in table.groupby(list(GROUP_COLUMNS), sort=False):
        reference = curves[curves["codec"] == reference_codec]
        for codec, curve in curves[curves["codec"] != reference_codec].groupby("codec", sort=False):
            for metric in metrics:
                difference = bd_metric_difference(curve[axis], curve[metric], reference[axis], reference[metric],
                                                  axis=axis, log_x=axis == "bpp")
                rows.append({
                    **dict(zip(GROUP_COLUMNS, group)), "codec": codec, "reference_codec": reference_codec,
                    "axis": axis, "metric": metric, "bd_difference": difference.value, "reason": difference.reason,
                })
    return pd.DataFrame(rows, columns=[*GROUP_COLUMNS, "codec", "reference_codec", "axis", "metric", "bd_difference",
                                       "reason"])
