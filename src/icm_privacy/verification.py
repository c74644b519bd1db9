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

The computation scales to a study's few thousand faces (millions of pairs, 1000 resamples) by handling
all resamples at once: a set of pairs weighs, in every resample, a quadratic form of the resamples'
image draw counts, which sparse or dense matrix products give for all resamples together. The
weights are integers, so these sums are exact whatever their order, and the results equal those of
summing pair by pair (tests/straightforward_privacy.py keeps that implementation as the oracle).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse


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


# --- impostor pairs ------------------------------------------------------------------------------

# The largest temporary (pairs x draws) block, in elements: 2**22 int64 values are 32 MB.
_BLOCK_ELEMENTS = 2**22
# impostor_pairs ranks every pair up to this many, else about the most similar 1/16 (thresholds at
# FAR <= 0.01 lie well inside); a draw whose threshold lies deeper ranks the rest when it gets there.
_RANK_ALL_UP_TO = 2**16
_RANKED_SHARE = 16
# Pairs a threshold search weighs at a time, for all draws, past the common start.
_SWEEP_BLOCK = 1024


@dataclass(frozen=True)
class ImpostorPairs:
    """Impostor pairs, the most similar first, with the faces and images each pair joins.

    Two kinds: pairs of two original faces (unordered, each pair once), and ordered pairs of a
    decoded probe face against another person's original face. The image codes let a bootstrap
    resample, or a cross-fitting fold, weight each pair by how often both its images were drawn.

    Only the head of the ranking is sorted: `similarity[:ranked]` descends (ties in pair order), and
    every later pair is less similar than all of those, in pair order. Thresholds at a FAR lie in the
    head; ranking millions of pairs would cost more than everything else. Up to 65,536 pairs, all
    are ranked; `ranking(start, stop)` reads the ranking at any depth.
    """

    similarity: np.ndarray  # (pairs,): the `ranked` most similar, descending, then the rest
    face_a: np.ndarray  # (pairs,) index of the first face: the probe, for ordered pairs
    image_a: np.ndarray  # (pairs,) image code of face_a
    image_b: np.ndarray  # (pairs,) image code of the other face
    face_images: np.ndarray  # (faces,) image code of every face of the analysed set
    faces_per_image: np.ndarray  # (images,) faces of the analysed set in each image
    same_identity_a: np.ndarray  # image codes of the cross-image pairs left out because labels make them one person
    same_identity_b: np.ndarray
    same_identity_face: np.ndarray  # the first face of each of those pairs
    ordered: bool  # (a, b) and (b, a) are two pairs: decoded probe vs original
    ranked: int  # how many pairs lead in descending order of similarity

    @property
    def count(self) -> int:
        return len(self.similarity)

    def weight(self, image_counts: np.ndarray) -> int:
        """Total weight of all impostor pairs when image i is drawn image_counts[i] times."""
        return int(self.weights(np.asarray(image_counts)[None, :])[0])

    def weights(self, image_counts: np.ndarray) -> np.ndarray:
        """Total weight of all impostor pairs for each draw of images (a row of image_counts).

        All cross-image face pairs, (sum of faces)^2 minus same-image terms (halved for unordered
        pairs), less the pairs that labels declare the same person; O(images), not O(pairs).
        """
        counts = np.asarray(image_counts, dtype=np.int64)
        faces_drawn = counts * self.faces_per_image
        cross_image = faces_drawn.sum(axis=1) ** 2 - (faces_drawn**2).sum(axis=1)
        if not self.ordered:
            cross_image //= 2
        left_out = sum((weight.sum(axis=1) for _, weight in self._same_identity_weights(counts)),
                       np.zeros(len(counts), dtype=np.int64))
        return cross_image - left_out

    def probe_weights(self, image_counts: np.ndarray) -> np.ndarray:
        """(draws, faces): weight of each face's ordered pairs as a probe, per draw of images (a row
        of image_counts): its image's count times the counts of its partners' images."""
        if not self.ordered:
            raise ValueError("probe weights are defined for ordered (probe, original) pairs")
        counts = np.asarray(image_counts, dtype=np.int64)
        face_counts = counts[:, self.face_images]
        own_image = face_counts * self.faces_per_image[self.face_images]
        weight = face_counts * ((counts @ self.faces_per_image)[:, None] - own_image)
        for part, left_out in self._same_identity_weights(counts):  # less the partners labels make the same person
            by_face = sparse.csr_matrix((np.ones(left_out.shape[1]), (self.same_identity_face[part],
                                                                      np.arange(left_out.shape[1]))),
                                        shape=(len(self.face_images), left_out.shape[1]))
            weight -= np.rint(by_face @ left_out.T.astype(np.float64)).astype(np.int64).T
        return weight

    def _same_identity_weights(self, counts: np.ndarray):
        """(part, weights): the left-out same-identity pairs a part at a time, and their weight in each
        draw (draws x pairs of the part)."""
        step = max(1, _BLOCK_ELEMENTS // max(1, len(counts)))
        for start in range(0, len(self.same_identity_a), step):
            part = slice(start, start + step)
            yield part, counts[:, self.same_identity_a[part]] * counts[:, self.same_identity_b[part]]

    def similarity_threshold(self, far: float, image_counts: np.ndarray) -> float:
        """Similarity threshold at `far` for one draw of images (all ones: the dataset itself; zeros
        leave images out); NaN if unresolvable."""
        return float(self.similarity_thresholds(far, np.asarray(image_counts)[None, :])[0])

    def similarity_thresholds(self, far: float, image_counts: np.ndarray,
                              image_folds: np.ndarray | None = None) -> np.ndarray:
        """similarity_threshold for each draw of images (each row of image_counts), all at once:
        (draws,). With image_folds (the fold of each image): (draws, folds), each fold's threshold
        calibrated on the pairs whose both images lie outside that fold.

        The threshold is the similarity of the first pair, down the ranking, at which the draw's
        cumulative pair weight exceeds the allowed false accepts; NaN where none are allowed.
        """
        counts = np.asarray(image_counts, dtype=np.int64)
        if image_folds is None:  # one "fold" that leaves nothing out
            folds, outside, classes = np.zeros(counts.shape[1], dtype=np.int64), np.ones((1, counts.shape[1]), bool), \
                np.ones((1, 1), dtype=bool)
        else:
            folds = np.asarray(image_folds)
            n_folds = int(folds.max()) + 1
            outside = folds != np.arange(n_folds)[:, None]  # (folds, images): the images fold k calibrates on
            other = ~np.eye(n_folds, dtype=bool)  # classes[k]: the (fold of image a, fold of image b) it may use
            classes = (other[:, :, None] & other[:, None, :]).reshape(n_folds, n_folds**2)
        allowed = np.stack([allowed_false_accepts_per_draw(far, self.weights(counts * fold_out))
                            for fold_out in outside], axis=1)  # (draws, folds)
        thresholds = self._first_exceeding(counts, allowed, folds, outside, classes)
        return thresholds[:, 0] if image_folds is None else thresholds

    def ranking(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(similarity, image_a, image_b) of the pairs ranked start..stop-1, most similar first."""
        stop = min(stop, self.count)
        if stop <= self.ranked:
            index = slice(start, stop)
        else:
            deeper = self.ranked + self._tail_order[max(start, self.ranked) - self.ranked:stop - self.ranked]
            index = np.concatenate([np.arange(start, min(stop, self.ranked)), deeper])
        return self.similarity[index], self.image_a[index], self.image_b[index]

    def more_similar_than(self, threshold: float) -> slice | np.ndarray:
        """Index of every pair whose similarity is strictly above `threshold`."""
        in_head = self.ranked - int(np.searchsorted(self.similarity[:self.ranked][::-1], threshold, side="right"))
        if in_head < self.ranked or self.ranked == self.count:
            return slice(0, in_head)  # the rest are less similar than the head's last pair
        deeper = self.ranked + np.flatnonzero(self.similarity[self.ranked:] > threshold)
        return np.concatenate([np.arange(self.ranked), deeper])

    @cached_property
    def _tail_order(self) -> np.ndarray:
        """The ranking of the pairs after the head (computed once, when a draw reaches that deep)."""
        return np.argsort(-self.similarity[self.ranked:], kind="stable")

    def _first_exceeding(self, counts: np.ndarray, allowed: np.ndarray, image_folds: np.ndarray,
                         outside: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """(draws, folds): per draw and fold k, the similarity of the first pair down the ranking at
        which the draw's cumulative weight of the pairs fold k may use (both images in outside[k])
        exceeds allowed[draw, k]; NaN where allowed is below 1.

        First the pairs up to a common position, before which few draws reach their allowance, are
        weighed at once; from there (the few: from the start) the draws advance block by block.
        """
        pending = allowed >= 1
        found = np.full(allowed.shape, np.nan)
        if not pending.any():
            return found
        # Pairs weigh 1 on average: the position where half the fewest allowed false accepts are used up.
        used_share = np.maximum(self.weights(outside.astype(np.int64)) / max(self.count, 1), 1e-12)
        common = min(self.count, int(np.min((allowed / 2 / used_share)[pending])))
        largest = max(common, _SWEEP_BLOCK) * float(counts.max(initial=0)) ** 2
        counts_t = np.ascontiguousarray(counts.T, dtype=_exact_float(largest))  # (images, draws)
        _, image_a, image_b = self.ranking(0, common)
        weight = _fold_weights(image_a, image_b, counts_t, image_folds, classes)
        late = pending & (weight <= allowed)
        found = self._sweep(counts_t, allowed - weight, late, common, image_folds, outside, classes)
        early = pending & ~late
        if early.any():
            found[early] = self._sweep(counts_t, allowed, early, 0, image_folds, outside, classes)[early]
        return found

    def _sweep(self, counts_t: np.ndarray, left: np.ndarray, pending: np.ndarray, start: int,
               image_folds: np.ndarray, outside: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """_first_exceeding for the pending (draw, fold)s from ranked position `start` on, with `left`
        false accepts still allowed: each block's weight comes from _fold_weights, for all draws at
        once; only within the block where a draw crosses are its pairs summed one by one."""
        found = np.full(left.shape, np.nan)
        left, pending = left.copy(), pending.copy()
        draws = np.flatnonzero(pending.any(axis=1))  # the columns of table
        table = np.ascontiguousarray(counts_t[:, draws])
        while draws.size:
            if start >= self.count:
                raise RuntimeError("impostor weights reach no pair beyond the allowed false accepts")
            similarity, image_a, image_b = self.ranking(start, start + _SWEEP_BLOCK)
            start += _SWEEP_BLOCK
            weight = _fold_weights(image_a, image_b, table, image_folds, classes)
            column, fold = np.nonzero(pending[draws] & (weight > left[draws]))
            if column.size:  # pair by pair, each crossing draw with its fold's images only
                crossing = table[:, column] * outside[fold].T
                cumulative = np.cumsum(np.take(crossing, image_a, axis=0) * np.take(crossing, image_b, axis=0), axis=0)
                found[draws[column], fold] = similarity[np.argmax(cumulative > left[draws[column], fold], axis=0)]
                pending[draws[column], fold] = False
            left[draws] -= weight
            going_on = pending[draws].any(axis=1)
            if going_on.sum() < 0.75 * draws.size:  # drop the finished draws' columns
                draws, table = draws[going_on], np.ascontiguousarray(table[:, going_on])
        return found


def _exact_float(largest_sum: float) -> type:
    """The smaller float type in which sums of integer weights up to `largest_sum` are exact, in any
    order (BLAS and sparse products sum in their own)."""
    return np.float32 if largest_sum < 2**24 else np.float64


def allowed_false_accepts_per_draw(far: float, impostor_weights: np.ndarray) -> np.ndarray:
    """allowed_false_accepts for many impostor weights at once (the same arithmetic)."""
    allowed_false_accepts(far, 0)  # checks the FAR
    return np.floor(far * np.asarray(impostor_weights, dtype=np.int64) + 1e-9).astype(np.int64)


def _fold_weights(image_a: np.ndarray, image_b: np.ndarray, counts_t: np.ndarray, image_folds: np.ndarray,
                  classes: np.ndarray) -> np.ndarray:
    """(draws, folds): total weight, in each draw (a column of counts_t), of the pairs (image_a,
    image_b) that each fold k may use: those whose (fold of image_a, fold of image_b) class is in
    classes[k] (classes: folds x folds**2).

    Per class, the weight is the quadratic form sum_i c_i (M c)_i, M the class's images x images pair
    counts: one sparse product for all classes and draws, its rows the (class, image_a) present.
    Integer sums, exact in counts_t's float type (chosen by _exact_float).
    """
    n_images, n_folds = counts_t.shape[0], classes.shape[0]
    if not image_a.size:
        return np.zeros((counts_t.shape[1], n_folds), dtype=np.int64)
    pair_class = image_folds[image_a] * n_folds + image_folds[image_b]
    rows, row_of_pair = np.unique(pair_class * n_images + image_a, return_inverse=True)
    per_row = sparse.csr_matrix((np.ones(image_a.size, dtype=counts_t.dtype), (row_of_pair, image_b)),
                                shape=(rows.size, n_images)) @ counts_t
    per_row *= np.take(counts_t, rows % n_images, axis=0)
    row_class = rows // n_images
    starts = np.flatnonzero(np.diff(row_class, prepend=-1))
    class_weight = np.zeros((classes.shape[1], counts_t.shape[1]))
    class_weight[row_class[starts]] = np.add.reduceat(per_row, starts, axis=0)
    return np.rint(classes.astype(np.float64) @ class_weight).astype(np.int64).T


def _head_first(similarity: np.ndarray) -> tuple[np.ndarray, int]:
    """Order that ranks the most similar pairs first (descending, ties in pair order) and keeps the
    rest, each less similar than all of those, in pair order; and how many are ranked.

    The head is every pair at least as similar as the (1/16)-quantile of a regular sample of the
    pairs; a stable sort of it is exactly the start of a stable sort of all pairs.
    """
    if similarity.size <= _RANK_ALL_UP_TO:
        return np.argsort(-similarity, kind="stable"), similarity.size
    sample = np.sort(similarity[::_RANKED_SHARE])
    cut = sample[-max(1, sample.size // _RANKED_SHARE)]
    head = np.flatnonzero(similarity >= cut)
    head = head[np.argsort(-similarity[head], kind="stable")]
    return np.concatenate([head, np.flatnonzero(similarity < cut)]), head.size


def impostor_pairs(
    original: np.ndarray, image_codes: np.ndarray, identity_codes: np.ndarray, n_images: int,
    probes: np.ndarray | None = None,
) -> ImpostorPairs:
    """Pairs of faces from different images that are not labelled as the same person.

    Without `probes`: pairs of two original faces. With `probes` (decoded faces, row-aligned with
    `original`): every decoded face against every other person's original, as ordered pairs.
    Faces of one image are different people but never impostor pairs: they share lighting, camera
    and compression, which would make impostors look alike for reasons unrelated to identity.
    Memory is O(faces^2): about 0.6 GB of ordered pairs at 3,000 faces.
    """
    image_codes = np.asarray(image_codes)
    identity_codes = np.asarray(identity_codes)
    cross_image = image_codes[:, None] != image_codes[None, :]
    same_identity = identity_codes[:, None] == identity_codes[None, :]
    impostor, excluded = cross_image & ~same_identity, cross_image & same_identity
    if probes is None:  # each unordered pair once, as (lower, higher) face index
        impostor, excluded = np.triu(impostor, k=1), np.triu(excluded, k=1)
    flat = np.flatnonzero(impostor)  # first * faces + second, in the pairs' order (row-major)
    excluded_first, excluded_second = np.divmod(np.flatnonzero(excluded), len(image_codes))
    del cross_image, same_identity, impostor, excluded
    similarity = (unit_rows(original if probes is None else probes) @ unit_rows(original).T).ravel()[flat]
    order, ranked = _head_first(similarity)
    similarity = similarity[order]
    first, second = np.divmod(flat[order], len(image_codes))
    del flat, order
    return ImpostorPairs(
        similarity=similarity,
        face_a=first,
        image_a=image_codes[first],
        image_b=image_codes[second],
        face_images=image_codes,
        faces_per_image=np.bincount(image_codes, minlength=n_images),
        same_identity_a=image_codes[excluded_first],
        same_identity_b=image_codes[excluded_second],
        same_identity_face=excluded_first,
        ordered=probes is not None,
        ranked=ranked,
    )


# --- attackers calibrated out of sample ---------------------------------------------------------

def image_folds(n_images: int, folds: int, seed: int | None) -> np.ndarray:
    """Fold of each image (balanced, in a seeded random order); fewer folds when images are fewer (one
    image: one fold, which leaves no pairs to calibrate on, so the attackers' values are NaN with a note)."""
    return np.random.default_rng(seed).permutation(np.arange(n_images) % max(1, min(folds, n_images)))


@dataclass(frozen=True)
class CrossFitThresholds:
    """The similarity threshold that scores each face, calibrated on the folds without that face's image."""

    per_fold: np.ndarray  # (folds,) on the dataset; NaN where the calibration set is below 1/FAR pairs
    resampled_per_fold: np.ndarray  # (resamples, folds) in each bootstrap draw of images
    face_folds: np.ndarray  # (faces,) the fold of each face's image
    calibration_pairs: np.ndarray  # (folds,) impostor pairs each fold's thresholds are calibrated on

    @cached_property
    def per_face(self) -> np.ndarray:
        """(faces,) on the dataset."""
        return self.per_fold[self.face_folds]

    @cached_property
    def resampled(self) -> np.ndarray:
        """(resamples, faces) in each bootstrap draw of images."""
        return self.resampled_per_fold[:, self.face_folds]

    @property
    def fewest_pairs(self) -> int:
        """Calibration pairs of the smallest calibration set."""
        return int(self.calibration_pairs.min())


def cross_fit_thresholds(pairs: ImpostorPairs, far: float, face_images: np.ndarray, folds: np.ndarray,
                         image_counts: np.ndarray) -> CrossFitThresholds:
    """Thresholds at `far` for the faces of each fold k, from the impostor pairs whose both images lie
    outside fold k: no face's own pairs (genuine or impostor) set the threshold that scores it."""
    outside = (folds[None, :] != np.arange(folds.max() + 1)[:, None]).astype(np.int64)  # (folds, images)
    dataset = pairs.similarity_thresholds(far, np.ones((1, len(folds)), dtype=np.int64), folds)[0]
    return CrossFitThresholds(dataset, pairs.similarity_thresholds(far, image_counts, folds), folds[face_images],
                              pairs.weights(outside))


def realised_far(pairs: ImpostorPairs, thresholds: CrossFitThresholds, probe_masks: np.ndarray,
                 image_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of the ordered impostor pairs of each bin's probes that the attacker accepts.

    probe_masks: (bins, faces), the probes of each bin. Each pair is scored with its probe's
    threshold, so the pairs that calibrated it are never among them. Returns the value on the dataset
    (bins,) and one per bootstrap resample (bins, resamples). NaN: for a bin with a probe whose
    threshold is undefined (its calibration set weighs fewer than 1/FAR pairs), everywhere; for a
    resample, where it leaves the threshold of a probe with pairs undefined or draws none of the
    bin's pairs.

    Per fold, a pair more similar than the fold's highest resampled threshold is accepted in every
    resample: those pairs are summed per probe and partner image and weighted for all resamples with
    one matrix product. Only pairs between the fold's lowest and highest threshold are weighed resample
    by resample (_band_weights). All sums are of integers, exact in the float types used.
    """
    if not pairs.ordered:
        raise ValueError("the realised FAR is measured on ordered (probe, original) pairs")
    in_bin = np.atleast_2d(np.asarray(probe_masks, dtype=bool)).astype(np.float64)  # (bins, faces)
    counts = np.asarray(image_counts, dtype=np.int64)
    per_fold, resampled = thresholds.per_fold, thresholds.resampled_per_fold
    every = np.concatenate([per_fold, resampled.ravel()])
    candidates = pairs.more_similar_than(np.nanmin(every) if np.isfinite(every).any() else np.inf)
    similarity, probe = pairs.similarity[candidates], pairs.face_a[candidates]
    probe_image, partner_image = pairs.image_a[candidates], pairs.image_b[candidates]
    fold = thresholds.face_folds[probe]

    pairs_per_face = pairs.probe_weights(np.ones((1, counts.shape[1]), dtype=np.int64))[0]
    accepted = np.bincount(probe[similarity > per_fold[fold]], minlength=in_bin.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        point = (in_bin @ accepted) / (in_bin @ pairs_per_face)

    defined = ~np.isnan(resampled)
    highest = np.where(defined, resampled, -np.inf).max(axis=0, initial=-np.inf)
    highest[~defined.any(axis=0)] = np.inf  # no resample defines it: accept nothing (those replicates are NaN)
    lowest = np.where(defined, resampled, np.inf).min(axis=0, initial=np.inf)
    always = similarity > highest[fold]
    accepted_weight = in_bin @ _weigh_pairs(probe[always], partner_image[always], pairs.face_images, counts)
    between = np.flatnonzero(~always & (similarity > lowest[fold]))
    counts_t = np.ascontiguousarray(counts.T, dtype=np.float64)
    for this_fold in np.unique(fold[between]):
        band = between[fold[between] == this_fold]
        accepted_weight += _band_weights(in_bin[:, probe[band]], similarity[band], probe_image[band],
                                         partner_image[band], resampled[:, this_fold], counts_t)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = accepted_weight / (in_bin @ pairs.probe_weights(counts).T.astype(np.float64))

    folds_with_pairs = (in_bin * (pairs_per_face > 0)) @ np.eye(resampled.shape[1])[thresholds.face_folds]
    replicates[(folds_with_pairs > 0).astype(np.float64) @ (~defined).T.astype(np.float64) > 0] = np.nan
    undefined_probe = in_bin @ np.isnan(thresholds.per_face) > 0
    point[undefined_probe] = np.nan
    replicates[undefined_probe] = np.nan
    return point, replicates


def _weigh_pairs(probe: np.ndarray, partner_image: np.ndarray, face_images: np.ndarray,
                 counts: np.ndarray) -> np.ndarray:
    """(faces, draws): per probe face, the weight of the given ordered pairs in each draw of images.

    The pairs are counted per probe and partner image (faces x images, D) and weighted for every
    draw at once: D @ counts.T, times the probe image's count. Sparse while D is, dense BLAS after.
    """
    n_faces, n_images = len(face_images), counts.shape[1]
    per_partner = np.bincount(probe * n_images + partner_image, minlength=n_faces * n_images).reshape(n_faces, -1)
    dtype = _exact_float(per_partner.sum(axis=1).max(initial=0) * counts.max(initial=0))
    if np.count_nonzero(per_partner) * 16 < per_partner.size:
        per_partner = sparse.csr_matrix(per_partner, dtype=dtype)
    else:
        per_partner = per_partner.astype(dtype)
    return (per_partner @ counts.T.astype(dtype)).astype(np.float64) * counts[:, face_images].T


def _band_weights(pair_bins: np.ndarray, similarity: np.ndarray, probe_image: np.ndarray, partner_image: np.ndarray,
                  thresholds: np.ndarray, counts_t: np.ndarray) -> np.ndarray:
    """(bins, draws): weight of the pairs (probes of one fold) that each draw accepts, similarity above
    its threshold (NaN: none). pair_bins: (bins, pairs), the bins of each pair's probe.

    Ranked by similarity, the pairs a draw accepts are a prefix. Draws are taken in chunks of similar
    prefix length: a chunk weighs the pairs up to its longest prefix, and compares only those past its
    shortest one with each draw's threshold.
    """
    order = np.argsort(-similarity, kind="stable")
    similarity, probe_image, partner_image, pair_bins = (
        similarity[order], probe_image[order], partner_image[order], pair_bins[:, order])
    accepts = np.searchsorted(-similarity, -np.nan_to_num(thresholds, nan=np.inf), side="left")
    by_prefix = np.argsort(accepts, kind="stable")
    dtype = _exact_float(accepts.max() * counts_t.max() ** 2)
    pair_bins = pair_bins.astype(dtype)
    weight = np.zeros((len(pair_bins), len(thresholds)))
    chunk = int(np.clip(_BLOCK_ELEMENTS // max(1, accepts.max()), 1, 64))
    for start in range(0, len(by_prefix), chunk):
        draws = by_prefix[start:start + chunk]
        shortest, longest = accepts[draws[0]], accepts[draws[-1]]
        if longest == 0:
            continue
        draw_counts = counts_t[:, draws].astype(dtype, order="C")
        pair_weight = np.take(draw_counts, probe_image[:longest], axis=0)
        pair_weight *= np.take(draw_counts, partner_image[:longest], axis=0)
        pair_weight[shortest:] *= similarity[shortest:longest, None] > thresholds[draws]
        weight[:, draws] = pair_bins[:, :longest] @ pair_weight
    return weight

