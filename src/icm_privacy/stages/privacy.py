"""Rules of workflow/rules/privacy.smk: privacy metrics a reviewer would accept (re-identification,
identification, TAR at fixed FAR, with bootstrap intervals) and their differences between codecs, the
privacy-utility frontier, and the figures drawn from those tables."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..datasets import identity_labels
from ..embeddings import stacked_embeddings
from ..files import atomic_path
from ..points import PointKey, Threshold
from ..tables import CROSS_RESOLUTION, STANDARD_ATTACKER

BD_METRICS = ["mean_cosine", "reid_published", "rank1"]  # compared between codecs at equal bpp or mAP


def privacy_metrics(faces_table_csv: str, rates_csv: str, embedding_files: dict[str, list[str]], models: list[str],
                    thresholds: list[float], dataset: dict, settings: dict, views: dict[str, list[str]],
                    reference_codec: str, outputs, adapter_files: dict[str, str] | None = None) -> None:
    """Re-identification, identification and TAR@FAR with bootstrap intervals, and BD-style summaries.

    `embedding_files`: image version -> its shards' embedding files, as for `tabulate`; faces are one
    person when the dataset's identity labels say so (datasets.identity_labels).
    `views`: attacker name -> the codec points it scores (attackers.py); `adapter_files`: codec point ->
    its fitted embedding adapters (the adapted attacker).

    Each attacker's probes are matched against its gallery: the originals, or for the cross-resolution
    attacker, per point, the originals shrunk like that point's images (its own analysis: its gallery and
    the impostor pairs that calibrate its thresholds are at that resolution).
    """
    from ..attackers import attackers
    from ..privacy import privacy_table

    face_table = pd.read_csv(faces_table_csv, dtype={"image": str, "face_id": str, "quality": str})
    faces = face_table.drop_duplicates("face_id").sort_values("face_id").reset_index(drop=True)
    face_ids = faces.face_id.tolist()
    rates = pd.read_csv(rates_csv, dtype={"image": str, "quality": str})
    mean_bpp = rates.groupby(["codec", "quality"]).bpp.mean().to_dict()
    identities = identity_labels(dataset)

    @functools.cache
    def embeddings(version: str) -> dict[str, np.ndarray]:
        return stacked_embeddings(embedding_files[version], models, face_ids)

    tables, by_name = [], attackers(adapter_files)
    for name, points in views.items():
        attacker = by_name[name]
        for gallery in dict.fromkeys(attacker.gallery_version(point) for point in points):
            probes = {PointKey.parse(point): {model: attacker.probes(point, model, vectors)
                                              for model, vectors in embeddings(attacker.probe_version(point)).items()}
                      for point in points if attacker.gallery_version(point) == gallery}
            table = privacy_table(faces, embeddings(gallery), probes, mean_bpp, confidence_thresholds=thresholds,
                                  identity_labels=identities, n_resamples=settings["n_resamples"], seed=settings["seed"])
            table.insert(2, "attacker", name)
            tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    for frame, path in ((table, outputs.table), (_differences(table, reference_codec, "bpp"), outputs.differences)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)


def _differences(table: pd.DataFrame, reference_codec: str, axis: str) -> pd.DataFrame:
    """BD-style differences of every codec against the reference codec, per attacker that scores the
    reference codec (the cross-resolution attacker scores downscale points only)."""
    from ..privacy import bd_difference_table

    parts = [bd_difference_table(rows, BD_METRICS, reference_codec, axis=axis).assign(attacker=name)
             for name, rows in table.groupby("attacker", sort=False) if (rows.codec == reference_codec).any()]
    differences = pd.concat(parts, ignore_index=True)
    differences.insert(0, "attacker", differences.pop("attacker"))
    return differences


def privacy_utility_frontier(privacy_csv: str, detection_csv: str, reference_codec: str, outputs) -> None:
    """Privacy against the machine task: each codec point's privacy rows (every attacker but the
    per-point cross-resolution one) with its detection mAP, and how much identity each codec leaves at
    equal detection mAP compared with the reference codec, per attacker (the BD-style difference over mAP
    instead of bpp)."""
    privacy = pd.read_csv(privacy_csv, dtype={"quality": str})
    detection = pd.read_csv(detection_csv, dtype={"quality": str})
    frontier = privacy[privacy.attacker != CROSS_RESOLUTION].merge(
        detection[["codec", "quality", "map"]], on=["codec", "quality"], how="inner")
    for frame, path in ((frontier, outputs.table), (_differences(frontier, reference_codec, "map"), outputs.differences)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)


def _plot_metric(table_csv: str, metric: str, threshold: str, x: str, outputs) -> None:
    from ..plots import save_figure
    from ..privacy_figures import metric_curves_figure

    labels = {"reid_published": "re-identification rate\n(DeepFace threshold)", "rank1": "rank-1 identification rate"}
    figure = metric_curves_figure(pd.read_csv(table_csv), metric, threshold=Threshold.parse(threshold), x=x,
                                  ylabel=labels.get(metric, metric))
    save_figure(figure, outputs.png, outputs.pdf)


def plot_privacy(privacy_csv: str, metric: str, threshold: str, outputs) -> None:
    """One privacy metric against bpp, from privacy.csv; `threshold` is the threshold's text."""
    _plot_metric(privacy_csv, metric, threshold, "bpp", outputs)


def plot_frontier(frontier_csv: str, metric: str, threshold: str, outputs) -> None:
    """One privacy metric against detection mAP, from frontier.csv; `threshold` is the threshold's text."""
    _plot_metric(frontier_csv, metric, threshold, "map", outputs)



def plot_example_faces(faces_table_csv: str, crop_files: dict[str, list[str]], points: list[str], model: str,
                       count: int, outputs) -> None:
    """The largest faces: original crop beside each codec point's decoded crop, with its similarity.

    `crop_files`: "original" and each codec point -> its shards' crop files.
    """
    from ..plots import save_figure
    from ..privacy_figures import example_faces_figure

    face_table = pd.read_csv(faces_table_csv, dtype={"image": str, "face_id": str, "quality": str})
    largest = (face_table.drop_duplicates("face_id").sort_values("short_side", ascending=False)
               .face_id.head(count).tolist())

    def crops(point):
        found = {}
        for path in crop_files[point]:
            with np.load(path) as data:
                found.update({face_id: data[face_id] for face_id in largest if face_id in data.files})
        return [found[face_id] for face_id in largest]

    standard = face_table[face_table.attacker == STANDARD_ATTACKER]
    similarity = standard.set_index(["codec", "quality", "face_id"])[f"cos_{model}"]
    decoded = {}
    for point in points:
        codec, quality = PointKey.parse(point)
        decoded[f"{codec} {quality}"] = list(zip(crops(point), (similarity[(codec, quality, f)] for f in largest)))
    save_figure(example_faces_figure(crops("original"), decoded), outputs.png, outputs.pdf)
