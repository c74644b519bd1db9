"""Rules of workflow/rules/privacy.smk: privacy metrics a reviewer would accept (re-identification,
identification, TAR at fixed FAR, with bootstrap intervals) and their differences between codecs, the
privacy-utility frontier, and the figures drawn from those tables."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets import identity_labels
from ..embeddings import stacked_embeddings
from ..files import atomic_path
from ..points import PointKey, Threshold
from ..tables import CROSS_RESOLUTION, STANDARD_ATTACKER

BD_METRICS = ["mean_cosine", "reid_published", "rank1"]  # compared between codecs at equal bpp or mAP


def privacy_metrics(faces_table_csv: str, rates_csv: str, embedding_files: dict[str, list[str]], points: list[str],
                    models: list[str], thresholds: list[float], dataset: dict, settings: dict,
                    reduced_points: list[str], reference_codec: str, outputs) -> None:
    """Re-identification, identification and TAR@FAR with bootstrap intervals, and BD-style summaries.

    `embedding_files`: image version -> its shards' embedding files, as for `tabulate`; faces are one
    person when the dataset's identity labels say so (datasets.identity_labels).

    The cross-resolution attacker of each of `reduced_points` is its own analysis: its gallery, and the
    impostor pairs that calibrate its thresholds, are the originals shrunk like that point's images.
    """
    from ..privacy import bd_difference_table, privacy_table

    face_table = pd.read_csv(faces_table_csv, dtype={"image": str, "face_id": str, "quality": str})
    faces = face_table.drop_duplicates("face_id").sort_values("face_id").reset_index(drop=True)
    face_ids = faces.face_id.tolist()
    rates = pd.read_csv(rates_csv, dtype={"image": str, "quality": str})
    mean_bpp = rates.groupby(["codec", "quality"]).bpp.mean().to_dict()
    identities = identity_labels(dataset)

    def analysis(reference_version: str, probe_versions: dict[str, str], attacker: str) -> pd.DataFrame:
        table = privacy_table(
            faces, stacked_embeddings(embedding_files[reference_version], models, face_ids),
            {PointKey.parse(point): stacked_embeddings(embedding_files[version], models, face_ids)
             for point, version in probe_versions.items()},
            mean_bpp, confidence_thresholds=thresholds, identity_labels=identities,
            n_resamples=settings["n_resamples"], seed=settings["seed"],
        )
        table.insert(2, "attacker", attacker)
        return table

    standard = analysis("original", {point: point for point in points}, STANDARD_ATTACKER)
    table = pd.concat([standard, *(analysis(f"{point}/reduced-original", {point: f"{point}/reduced"}, CROSS_RESOLUTION)
                                   for point in reduced_points)], ignore_index=True)
    differences = bd_difference_table(standard, BD_METRICS, reference_codec)
    for frame, path in ((table, outputs.table), (differences, outputs.differences)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)


def privacy_utility_frontier(privacy_csv: str, detection_csv: str, reference_codec: str, outputs) -> None:
    """Privacy against the machine task: each codec point's privacy rows (standard attacker) with its
    detection mAP, and how much identity each codec leaves at equal detection mAP compared with the
    reference codec (the BD-style difference over mAP instead of bpp)."""
    from ..privacy import bd_difference_table

    privacy = pd.read_csv(privacy_csv, dtype={"quality": str})
    detection = pd.read_csv(detection_csv, dtype={"quality": str})
    frontier = privacy[privacy.attacker == STANDARD_ATTACKER].merge(
        detection[["codec", "quality", "map"]], on=["codec", "quality"], how="inner")
    differences = bd_difference_table(frontier, BD_METRICS, reference_codec, axis="map")
    for frame, path in ((frontier, outputs.table), (differences, outputs.differences)):
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
