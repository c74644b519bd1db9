"""Rules of workflow/rules/results.smk: per-image rates and per-face similarities from every shard,
then Table 1 per confidence threshold and the run summary, the recorded configuration, and the
rate-similarity figure drawn from Table 1 alone."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..embeddings import load_embeddings
from ..files import atomic_path
from ..points import PointKey, Threshold
from ..tables import CROSS_RESOLUTION, STANDARD_ATTACKER
from .data import MANIFEST_COLUMNS

NOT_READ = "not read"  # manifest status of a dataset folder's file that is no image the run reads
TABLE1_QUALITY_COLUMNS = ["psnr_rgb_mean", "psnr_y_mean", "ms_ssim_mean", "face_psnr_mean"]  # from quality.py


def tabulate(shard_folders: list[str], faces_csvs: list[str], coded_folders: dict[str, list[str]],
             embedding_files: dict[str, list[str]], models: list[str], reduced_points: list[str], outputs,
             unread: dict[str, str] | None = None) -> None:
    """Gather per-image rates and per-face similarities from every shard and codec point.

    `coded_folders`: codec point ("<codec>/<quality>") -> its shards' bitstream folders.
    `embedding_files`: image version ("original", "<codec>/<quality>", "<point>/reduced", ...) -> its
    shards' embedding files.
    `reduced_points`: downscale points whose faces the cross-resolution attacker also matches; their
    rows in faces.csv have attacker = cross-resolution.
    """
    from ..tables import face_similarity_table, rates_table

    manifest = pd.concat([pd.read_csv(Path(folder) / "manifest.csv", dtype={"image": str}) for folder in shard_folders])
    if unread:  # the dataset folder's other files: listed with the reason, never dropped without a word
        manifest = pd.concat([manifest, pd.DataFrame([[Path(path).stem, path, 0, 0, NOT_READ, reason]
                                                      for path, reason in unread.items()], columns=MANIFEST_COLUMNS)])
    accepted = manifest[manifest.status == "accepted"]
    coded = []
    for point, folders in coded_folders.items():
        codec, quality = PointKey.parse(point)
        for folder in folders:
            coding = pd.read_csv(Path(folder) / "coding.csv", dtype={"image": str, "bitstream": str})
            coded.append(pd.DataFrame({"codec": codec, "quality": quality, "image": coding.image,
                                       "path": [str(Path(folder) / name) for name in coding.bitstream],
                                       "estimated_bpp": coding.estimated_bpp}))
    bitstreams = pd.concat(coded, ignore_index=True)
    points = list(coded_folders)
    rates = rates_table(accepted, bitstreams)
    faces = pd.concat([pd.read_csv(path, dtype={"image": str, "face_id": str}) for path in faces_csvs])
    embeddings = {model: {point: load_embeddings(embedding_files[point], model) for point in ["original", *points]}
                  for model in models}
    embedded_faces = faces[faces.face_id.isin(embeddings[models[0]]["original"])]
    face_tables = [face_similarity_table(embedded_faces, rates, embeddings).assign(attacker=STANDARD_ATTACKER)]
    for point in reduced_points:  # the cross-resolution attacker: reduced decode vs shrunk original
        codec, quality = PointKey.parse(point)
        reduced = {model: {"original": load_embeddings(embedding_files[f"{point}/reduced-original"], model),
                           point: load_embeddings(embedding_files[f"{point}/reduced"], model)}
                   for model in models}
        point_rates = rates[(rates.codec == codec) & (rates.quality == quality)]
        face_tables.append(face_similarity_table(embedded_faces, point_rates, reduced).assign(attacker=CROSS_RESOLUTION))
    face_table = pd.concat(face_tables, ignore_index=True)
    face_table.insert(2, "attacker", face_table.pop("attacker"))
    for table, path in ((rates, outputs.rates), (face_table, outputs.faces), (manifest, outputs.manifest)):
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)


def summarise(inputs, models: list[str], thresholds: list[float], outputs, skipped: list[str] = ()) -> None:
    """Write Table 1 (CSV and Markdown) per confidence threshold, the codecs' BD differences against each
    other (`rate_bd_table`), and a run summary (which lists the optional codec entries `skipped` on this
    machine, with the reason)."""
    from ..tables import rate_bd_table, table1, to_markdown

    # qualities stay text ("32", "1.5"), as in paths: tables are joined on them
    rates = pd.read_csv(inputs.rates, dtype={"image": str, "quality": str})
    faces = pd.read_csv(inputs.faces, dtype={"image": str, "face_id": str, "quality": str})
    manifest = pd.read_csv(inputs.manifest, dtype={"image": str})
    detection = (pd.read_csv(inputs.detection, dtype={"quality": str}) if "detection" in inputs.keys() else None)
    quality = pd.read_csv(inputs.quality, dtype={"quality": str})[["codec", "quality", *TABLE1_QUALITY_COLUMNS]]
    tables = {}
    for threshold in map(Threshold, thresholds):
        tables[threshold] = table1(rates, faces, models, threshold.value).merge(quality, on=["codec", "quality"], how="left")
        if detection is not None:  # the study's "detection accuracy" column
            tables[threshold] = tables[threshold].merge(
                detection[["codec", "quality", "map"]].rename(columns={"map": "detection_map"}),
                on=["codec", "quality"], how="left")
        for output in outputs.tables:
            if f"conf{threshold.text}." in output:
                with atomic_path(output) as temporary:
                    if output.endswith(".csv"):
                        tables[threshold].to_csv(temporary, index=False)
                    else:
                        temporary.write_text(to_markdown(tables[threshold]))
    rate_bd = rate_bd_table(next(iter(tables.values())))
    with atomic_path(outputs.rate_bd) as temporary:
        rate_bd.to_csv(temporary, index=False)
    unread = manifest[manifest.status == NOT_READ]
    refused = manifest[~manifest.status.isin(["accepted", NOT_READ])]
    listed = len(manifest) - len(unread)
    lines = [
        "# Run summary", "",
        f"- images listed: {listed}; accepted: {listed - len(refused)}; refused: {len(refused)}; "
        f"other files in the dataset folder, not read: {len(unread)}",
        f"- codec points: {rates.groupby(['codec', 'quality']).ngroups}; face models: {', '.join(models)}",
        *[f"- faces with detector confidence >= {t.text}: {int(faces[faces.confidence >= t.value].face_id.nunique())}"
          for t in map(Threshold, thresholds)],
        "- bpp_mean: mean of per-image bpp; bpp_pooled: total bits / total pixels (both over all accepted images)",
        "",
    ]
    if skipped:
        lines += ["## Codec entries skipped (optional, cannot run on this machine)", "",
                  *[f"- {message}" for message in skipped], ""]
    if len(refused):
        lines += ["## Refused images", "", *[f"- {row.reason}" for row in refused.itertuples()], ""]
    if len(unread):
        lines += ["## Files not read", "", *[f"- {row.source}: {row.reason}" for row in unread.itertuples()], ""]
    for threshold, table in tables.items():
        lines += [f"## Table 1, detector confidence >= {threshold.text}", "", to_markdown(table)]
    if len(rate_bd):
        lines += ["## Codecs at equal bitrate (Bjøntegaard, codec minus reference over the bpp both cover)", "",
                  to_markdown(rate_bd)]
    with atomic_path(outputs.summary) as temporary:
        temporary.write_text("\n".join(lines))


def record_config(config: dict, output: str, skipped: list[str] = ()) -> None:
    """The configuration this run used, defaults filled in, every entry as written; the optional codec
    entries skipped on this machine are listed with the reason in a comment at the top (the file stays
    a configuration that runs)."""
    import yaml

    header = "".join(f"# {message}\n" for message in skipped)
    with atomic_path(output) as temporary:
        temporary.write_text(header + yaml.safe_dump(dict(config), sort_keys=False))



def plot_rate_similarity(table1_csv: str, models: list[str], png_path: str) -> None:
    """bpp vs mean cosine similarity from Table 1 (one threshold), PNG and PDF beside it."""
    from ..plots import plot_rate_similarity as plot

    plot(pd.read_csv(table1_csv), models, str(Path(png_path).with_suffix("")))

