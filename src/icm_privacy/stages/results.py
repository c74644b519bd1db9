"""Rules of workflow/rules/results.smk: per-image rates and per-face similarities from every shard,
then Table 1 per confidence threshold and the run summary, the recorded configuration, and the
rate-similarity figure drawn from Table 1 alone."""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from ..embeddings import load_embeddings
from ..files import atomic_path
from ..points import PointKey, Threshold
from .data import MANIFEST_COLUMNS

NOT_READ = "not read"  # manifest status of a dataset folder's file that is no image the run reads
TABLE1_QUALITY_COLUMNS = ["psnr_rgb_mean", "psnr_y_mean", "ms_ssim_mean", "face_psnr_mean", "edge_psnr_mean",
                          "off_edge_psnr_mean"]  # from quality.py


def tabulate(shard_folders: list[str], faces_csvs: list[str], coded_folders: dict[str, list[str]],
             embedding_files: dict[str, list[str]], models: list[str], views: dict[str, list[str]], outputs,
             unread: dict[str, str] | None = None, adapter_files: dict[str, str] | None = None) -> None:
    """Gather per-image rates and per-face similarities from every shard and codec point.

    `coded_folders`: codec point ("<codec>/<quality>") -> its shards' bitstream folders.
    `embedding_files`: image version ("original", "<codec>/<quality>", "<point>/reduced", ...) -> its
    shards' embedding files.
    `views`: attacker name -> the codec points it scores (attackers.py; every point has the standard
    attacker's rows); `adapter_files`: codec point -> its fitted embedding adapters (the adapted attacker).
    """
    from ..attackers import attackers, probe_vectors
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
    rates = rates_table(accepted, bitstreams)
    faces = pd.concat([pd.read_csv(path, dtype={"image": str, "face_id": str}) for path in faces_csvs])
    embedded_faces = faces[faces.face_id.isin(load_embeddings(embedding_files["original"], models[0]))]
    loaded = functools.cache(lambda version, model: load_embeddings(embedding_files[version], model))
    face_tables, by_name = [], attackers(adapter_files)
    for name, attacker_points in views.items():  # each attacker's probes against its gallery, point by point
        attacker = by_name[name]
        for point in attacker_points:
            codec, quality = PointKey.parse(point)
            embeddings = {model: {"original": loaded(attacker.gallery_version(point), model),
                                  point: probe_vectors(attacker, point, model, loaded(attacker.probe_version(point), model))}
                          for model in models}
            point_rates = rates[(rates.codec == codec) & (rates.quality == quality)]
            face_tables.append(face_similarity_table(embedded_faces, point_rates, embeddings).assign(attacker=name))
    face_table = pd.concat(face_tables, ignore_index=True)
    face_table.insert(2, "attacker", face_table.pop("attacker"))
    for table, path in ((rates, outputs.rates), (face_table, outputs.faces), (manifest, outputs.manifest)):
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)


def summarise(inputs, models: list[str], thresholds: list[float], outputs, skipped: list[str] = (),
              unmeasured: list[str] = ()) -> None:
    """Write Table 1 (CSV and Markdown) per confidence threshold, the codecs' BD differences against each
    other (`rate_bd_table`), and a run summary (which lists the optional codec entries `skipped` on this
    machine, with the reason, and why the `unmeasured` columns are empty)."""
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
    if unmeasured:
        lines += ["## Not measured in this run", "", *[f"- {reason}" for reason in unmeasured], ""]
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
    if "restorers" in inputs.keys():
        lines += _learning_attackers(inputs.restorers, inputs.adapters)
    with atomic_path(outputs.summary) as temporary:
        temporary.write_text("\n".join(lines))


def _learning_attackers(restorers_csv: str, adapters_csv: str) -> list[str]:
    """The run summary's section on the attackers who learn: what each restorer gains on held-out training
    images and what it cost, a warning where it gains too little to be read as a restorer, and the adapters' fit."""
    from ..tables import to_markdown
    from .attackers import MIN_USEFUL_GAIN_DB

    def table(path: str) -> pd.DataFrame:  # empty where that attacker is off
        try:
            return pd.read_csv(path, dtype={"quality": str})
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    lines = ["## Attackers who learn (trained on their own images, never an evaluated one)", ""]
    restorers, adapters = table(restorers_csv), table(adapters_csv)
    if len(restorers):
        lines += ["Restorers: PSNR (dB) on held-out training images, decoded and restored, and the training cost:", "",
                  to_markdown(restorers[["codec", "quality", "holdout_images", "psnr_decoded", "psnr_restored", "psnr_gain",
                                         "face_psnr_gain", "steps", "cpu_seconds"]])]
        lines += [f"- warning: the {row.codec} restorer gains {row.psnr_gain:.2f} dB at quality {row.quality}, under "
                  f"{MIN_USEFUL_GAIN_DB} dB: it is not yet a restorer there; train it longer before reading its privacy rows"
                  for row in restorers[restorers.psnr_gain < MIN_USEFUL_GAIN_DB].itertuples()]
        lines.append("")
    if len(adapters):
        lines += ["Embedding adapters: held-out mean cosine to the originals, decoded and adapted:", "",
                  to_markdown(adapters)]
    return lines


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



def plot_codec_gallery(rates_csv: str, faces_csv: str, folders: dict[str, list[str]], gallery: dict,
                       min_confidence: float, outputs) -> None:
    """The chosen images (`gallery["images"]`) as each codec decodes them nearest `gallery["target_bpp"]`,
    with their largest face at `min_confidence` beside them (gallery.py); `folders`: point -> shard folders."""
    from ..gallery import gallery_figure, gallery_rows, image_reader
    from ..plots import save_figure

    rates = pd.read_csv(rates_csv, dtype={"image": str, "quality": str})
    faces = pd.read_csv(faces_csv, dtype={"image": str, "face_id": str, "quality": str})
    images = [str(image) for image in gallery["images"]]
    rows = gallery_rows(images, rates, faces, image_reader(folders), gallery["target_bpp"], min_confidence,
                        gallery.get("codecs"))
    save_figure(gallery_figure(rows), outputs.png, outputs.pdf)
