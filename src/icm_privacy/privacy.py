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
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

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
CI_LEVEL = 0.95

FACE_COLUMNS = ("face_id", "image", "confidence", "short_side")
GROUP_COLUMNS = ("model", "min_confidence", "breakdown", "bin")


# --- embeddings and per-face scores -------------------------------------------------------------

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


# --- calibrated verification (TAR at FAR) --------------------------------------------------------

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
    """Impostor pairs among original faces, most similar first, with the images each pair joins.

    The image codes let a bootstrap resample weight each pair by how often both images were drawn.
    """

    similarity: np.ndarray  # (pairs,), descending
    image_a: np.ndarray  # (pairs,) image code of one face of the pair
    image_b: np.ndarray  # (pairs,) image code of the other face
    faces_per_image: np.ndarray  # (images,) faces of the analysed set in each image
    same_identity_a: np.ndarray  # cross-image pairs left out because labels make them one person
    same_identity_b: np.ndarray

    @property
    def count(self) -> int:
        return len(self.similarity)

    def weight(self, image_counts: np.ndarray) -> int:
        """Total weight of all impostor pairs when image i is drawn image_counts[i] times.

        All cross-image face pairs, (sum of faces)^2 minus same-image terms over 2, less the
        pairs that labels declare the same person; O(images), not O(pairs).
        """
        faces_drawn = image_counts * self.faces_per_image
        cross_image = (faces_drawn.sum() ** 2 - (faces_drawn**2).sum()) // 2
        same_identity = (image_counts[self.same_identity_a] * image_counts[self.same_identity_b]).sum()
        return int(cross_image - same_identity)

    def similarity_threshold(self, far: float, image_counts: np.ndarray) -> float:
        """Similarity threshold at `far` for one draw of images (all ones: the dataset itself); NaN if unresolvable."""
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
    original: np.ndarray, image_codes: np.ndarray, identity_codes: np.ndarray, n_images: int
) -> ImpostorPairs:
    """Pairs of original faces from different images that are not labelled as the same person.

    Faces of one image are different people but never impostor pairs: they share lighting, camera
    and compression, which would make impostors look alike for reasons unrelated to identity.
    Memory is O(faces^2); fine up to about 10,000 faces.
    """
    image_codes = np.asarray(image_codes)
    identity_codes = np.asarray(identity_codes)
    first, second = np.triu_indices(len(image_codes), k=1)
    cross_image = image_codes[first] != image_codes[second]
    same_identity = identity_codes[first] == identity_codes[second]
    impostor = cross_image & ~same_identity
    first_i, second_i = first[impostor], second[impostor]
    unit = unit_rows(original)
    similarity = (unit @ unit.T)[first_i, second_i]
    order = np.argsort(-similarity, kind="stable")
    excluded = cross_image & same_identity
    return ImpostorPairs(
        similarity=similarity[order],
        image_a=image_codes[first_i][order],
        image_b=image_codes[second_i][order],
        faces_per_image=np.bincount(image_codes, minlength=n_images),
        same_identity_a=image_codes[first[excluded]],
        same_identity_b=image_codes[second[excluded]],
    )


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
    return ["mean_cosine", "reid_published", *[f"tar_{far_label(far)}" for far in fars], *[f"rank{k}" for k in ranks]]


@dataclass(frozen=True)
class _Calibration:
    """A model's calibrated thresholds on the faces kept at one confidence threshold."""

    impostor_pairs: int
    similarity: dict[float, float]  # FAR -> threshold on the dataset
    resampled: dict[float, np.ndarray]  # FAR -> threshold in each bootstrap resample


def _calibrate(pairs: ImpostorPairs, fars: Sequence[float], image_counts: np.ndarray) -> _Calibration:
    dataset = np.ones(image_counts.shape[1], dtype=np.int64)
    return _Calibration(
        impostor_pairs=pairs.count,
        similarity={far: pairs.similarity_threshold(far, dataset) for far in fars},
        resampled={far: np.array([pairs.similarity_threshold(far, c) for c in image_counts]) for far in fars},
    )


def _estimate(name: str, point: float, replicates: np.ndarray) -> dict[str, float]:
    low, high = percentile_interval(replicates)
    return {name: point, f"{name}_ci_low": low, f"{name}_ci_high": high}


def _bin_metrics(
    similarity: np.ndarray,
    ranks: np.ndarray,
    face_images: np.ndarray,
    published_threshold: float,
    calibration: _Calibration,
    image_counts: np.ndarray,
    rank_cutoffs: Sequence[int],
) -> dict[str, float]:
    """Point estimates and bootstrap intervals of every metric over one bin's faces (at least one)."""
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
    for far, threshold in calibration.similarity.items():
        resampled = calibration.resampled[far]
        accepted = (similarity[None, :] > resampled[:, None]).astype(float)
        replicates = np.where(np.isnan(resampled), np.nan, bootstrap_face_mean(accepted, face_images, image_counts))
        point = float(np.mean(similarity > threshold)) if np.isfinite(threshold) else np.nan
        row.update(_estimate(f"tar_{far_label(far)}", point, replicates))
    return row


def _notes(model: str, published_threshold: float, calibration: _Calibration, n_faces: int) -> str:
    """Why values in a row are NaN, '; '-separated ('' when none are)."""
    notes = [] if n_faces else ["no faces in this bin"]
    if np.isnan(published_threshold):
        notes.append(f"no published cosine threshold for {model}")
    for far, threshold in calibration.similarity.items():
        if np.isnan(threshold):
            notes.append(
                f"FAR {far:g} needs >= {int(np.ceil(1 / far - 1e-9))} impostor pairs, "
                f"{calibration.impostor_pairs} available"
            )
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
    note (why values are NaN).
    """
    _check_inputs(faces, original_embeddings, decoded_embeddings, mean_bpp)
    image_codes, images = pd.factorize(faces["image"])
    identities = face_identities(faces, identity_labels)
    image_counts = bootstrap_image_counts(len(images), n_resamples, seed)
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
            pairs = impostor_pairs(original[kept], image_codes[kept], identities[kept], len(images))
            calibration = _calibrate(pairs, fars, image_counts)
            analysed_set = {
                "model": model, "min_confidence": min_confidence,
                "gallery_size": int(kept.sum()), "impostor_pairs": pairs.count,
                "distance_threshold_published": published,
                **{f"distance_threshold_{far_label(far)}": 1.0 - threshold
                   for far, threshold in calibration.similarity.items()},
            }
            for (codec, quality), per_model in decoded_embeddings.items():
                decoded = np.asarray(per_model[model])[kept]
                similarity = paired_similarity(original[kept], decoded)
                probe_ranks = identification_ranks(decoded, original[kept], identities[kept], identities[kept])
                for breakdown, name, in_bin in breakdown_masks:
                    in_bin = in_bin[kept]
                    n_faces = int(in_bin.sum())
                    row = {
                        "codec": codec, "quality": quality, "bpp": float(mean_bpp[(codec, quality)]),
                        **analysed_set, "breakdown": breakdown, "bin": name,
                        "n_faces": n_faces, "n_images": len(np.unique(image_codes[kept][in_bin])),
                    }
                    if n_faces:
                        row.update(_bin_metrics(
                            similarity[in_bin], probe_ranks[in_bin], image_codes[kept][in_bin],
                            published, calibration, image_counts, ranks,
                        ))
                    rows.append({**row, "note": _notes(model, published, calibration, n_faces)})
    metrics = [f"{m}{suffix}" for m in metric_columns(fars, ranks) for suffix in ("", "_ci_low", "_ci_high")]
    leading = [column for column in rows[0] if column not in metrics and column != "note"]
    return pd.DataFrame(rows).reindex(columns=[*leading, *metrics, "note"])


# --- Bjøntegaard-style rate summaries -----------------------------------------------------------

class BDDifference(NamedTuple):
    """Average metric difference at equal bitrate; reason says why value is NaN ('' otherwise)."""

    value: float
    reason: str


def _rate_curve(bpp: Sequence[float], metric: Sequence[float], name: str) -> PchipInterpolator | str:
    """PCHIP of metric over log(bpp), or the reason the points cannot form one."""
    bpp, metric = np.asarray(bpp, dtype=np.float64), np.asarray(metric, dtype=np.float64)
    if bpp.shape != metric.shape:
        return f"codec {name}: {bpp.size} bpp values but {metric.size} metric values"
    usable = np.isfinite(bpp) & np.isfinite(metric)
    bpp, metric = bpp[usable], metric[usable]
    if bpp.size < 2:
        return f"codec {name} has {bpp.size} point(s) with a finite metric; a curve needs >= 2"
    if (bpp <= 0).any():
        return f"codec {name} has bpp <= 0; log(bpp) is undefined"
    order = np.argsort(bpp)
    if np.any(np.diff(bpp[order]) == 0):
        return f"codec {name} has repeated bpp values; metric is not a function of bpp"
    return PchipInterpolator(np.log(bpp[order]), metric[order])


def bd_metric_difference(
    bpp_a: Sequence[float], metric_a: Sequence[float], bpp_b: Sequence[float], metric_b: Sequence[float]
) -> BDDifference:
    """Average of metric_A - metric_B at equal bitrate over the bitrates both codecs cover.

    Like Bjøntegaard's delta-PSNR, with the metric in place of PSNR: each curve is interpolated
    as a function of log(bpp), both are integrated over the common log(bpp) interval, and the
    difference of the integrals is divided by the interval's length. The interpolation is PCHIP
    (piecewise cubic Hermite, shape-preserving, as in the JCT-VC/JVET common-test-condition
    BD sheets); it needs >= 2 points per codec (2 points give the straight line through them),
    where Bjøntegaard's original cubic polynomial needs 4. Points with a NaN metric are dropped.
    The value is in the metric's units: for a rate in [0, 1], x100 gives percentage points, and a
    negative value means codec A re-identifies less than codec B at the same bitrate.
    """
    curve_a, curve_b = _rate_curve(bpp_a, metric_a, "A"), _rate_curve(bpp_b, metric_b, "B")
    for curve in (curve_a, curve_b):
        if isinstance(curve, str):
            return BDDifference(np.nan, curve)
    low = max(curve_a.x[0], curve_b.x[0])
    high = min(curve_a.x[-1], curve_b.x[-1])
    if high <= low:
        return BDDifference(np.nan, "the codecs' bpp ranges do not overlap")
    difference = (curve_a.integrate(low, high) - curve_b.integrate(low, high)) / (high - low)
    return BDDifference(float(difference), "")


def bd_difference_table(table: pd.DataFrame, metrics: Sequence[str], reference_codec: str) -> pd.DataFrame:
    """BD metric difference of every codec against `reference_codec`, per model/threshold/bin and metric.

    table: privacy_table's output. Columns: model, min_confidence, breakdown, bin, codec,
    reference_codec, metric, bd_difference, reason.
    """
    rows = []
    for group, curves in table.groupby(list(GROUP_COLUMNS), sort=False):
        reference = curves[curves["codec"] == reference_codec]
        for codec, curve in curves[curves["codec"] != reference_codec].groupby("codec", sort=False):
            for metric in metrics:
                difference = bd_metric_difference(curve["bpp"], curve[metric], reference["bpp"], reference[metric])
                rows.append({
                    **dict(zip(GROUP_COLUMNS, group)), "codec": codec, "reference_codec": reference_codec,
                    "metric": metric, "bd_difference": difference.value, "reason": difference.reason,
                })
    return pd.DataFrame(rows, columns=[*GROUP_COLUMNS, "codec", "reference_codec", "metric", "bd_difference", "reason"])
