"""Pipeline benchmarks: per-stage throughput of a finished run, the embedding sweep against a naive
DeepFace.verify baseline, DAG construction time at COCO val2017 scale, orchestration overhead, and a
projection of the full val2017 reproduction. Prints one table per section and a summary against the
targets; it is not a test.

    .venv/bin/python scripts/benchmark_pipeline.py                        # every section
    .venv/bin/python scripts/benchmark_pipeline.py --sections stages embedding --results results/coco-persons

Sections:
  stages      CPU seconds per image (or face) of every stage, from the Snakemake benchmark files of --results
  embedding   the sweep over every codec point and face model on --results' real crops: the workflow's
              batched per-shard embedding (icm_privacy.embeddings.embed_crops) against DeepFace.verify
              once per (original, decoded) pair, and against the model's bare forward pass
  dag         dry-run time for --dag-images synthetic images x --dag-points codec points
  overhead    a real run of --overhead-config: wall time against the rule time its benchmark files hold
  projection  COCO val2017 in the study's configuration (VVC QP 32-40, two learned points, the offline face
              models, YOLOv5n) on --project-cores cores, from the above
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Python puts this script's folder first on sys.path; the workflow's scripts there (tabulate.py) would
# shadow packages of the same name that TensorFlow and pandas import.
sys.path.remove(str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

SECTIONS = ["stages", "embedding", "dag", "overhead", "projection"]
TARGETS = {
    "embedding speed-up over naive verify": ">= 10x",
    "embedding per face vs bare forward": "<= 2x",
    "DAG dry run": "<= 30 s",
    "orchestration overhead": "<= 10 %",
}


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}\n")
    if rows:
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda value: f"{value:.4g}", na_rep="-"))
    sys.stdout.flush()


def snakemake(*arguments: str) -> tuple[float, str]:
    """Run Snakemake in the repository; return (wall seconds, output). Fails loudly."""
    # --nolock: every output goes to this script's own folder, and other Snakemake runs in the same
    # working directory (tests, other configs) would otherwise race on .snakemake/locks.
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "none", "--nolock", *arguments]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return seconds, result.stdout + result.stderr


def job_count(output: str) -> int:
    return int(re.findall(r"^total\s+(\d+)$", output, re.MULTILINE)[-1])


def run_config(config_path: Path, results: Path, **overrides) -> Path:
    """A copy of a workflow config that writes to `results` (and other top-level overrides)."""
    config = yaml.safe_load(config_path.read_text())
    config.update(results=str(results), **overrides)
    copy = results.parent / f"{results.name}-config.yaml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(yaml.safe_dump(config))
    return copy


# --- stages --------------------------------------------------------------------------------------

def read_benchmarks(results: Path) -> pd.DataFrame:
    """One row per benchmark file: stage, the job's path below its stage, wall s, CPU s."""
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        parts = path.relative_to(results / "benchmarks").with_suffix("").parts
        stage = f"code {parts[1]}" if parts[0] == "code" else parts[0]
        measured = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append({"stage": stage, "job": "/".join(parts[1:]), "path": str(path.resolve()),
                     "s": float(measured["s"]), "cpu_s": float(measured["cpu_time"])})
    return pd.DataFrame(rows, columns=["stage", "job", "path", "s", "cpu_s"])


def npz_items(path: Path, key: str | None = None) -> int:
    with np.load(path) as data:
        return len(data[key]) if key else len(data.files)


def stage_items(results: Path, stage: str, job: str) -> tuple[str, int]:
    """What one job of a stage processed: (unit, count)."""
    if stage == "prepare_images":
        return "images", len(pd.read_csv(results / "images" / job / "manifest.csv"))
    if stage.startswith("code "):
        return "images", len(pd.read_csv(results / "bitstreams" / job / "coding.csv"))
    if stage in ("detect_faces", "detect_objects"):  # detections: one job per image version and shard
        manifest = pd.read_csv(results / "images" / job.rsplit("/", 1)[-1] / "manifest.csv")
        return "images", int((manifest.status == "accepted").sum())
    if stage == "measure_quality":
        return "images", len(pd.read_csv(results / "quality" / f"{job}.csv"))
    if stage in ("crop_faces", "crop_faces_reduced"):
        return "faces", npz_items(results / "crops" / f"{job}.npz") if stage == "crop_faces" else 0
    if stage == "embed_faces":
        path = results / "embeddings" / f"{job}.npz"
        with np.load(path) as data:
            models = [key for key in data.files if key != "face_ids"]
        return "face embeddings", npz_items(path, "face_ids") * len(models)
    return "jobs", 1


EMBEDDED = re.compile(r"INFO (\S+): (\d+) faces embedded, ([0-9.]+) CPU-s$")


def embedding_cpu_by_model(results: Path) -> dict[str, tuple[int, float]]:
    """Face model -> (faces embedded, CPU seconds) over every embed_faces job of the run, from the jobs'
    logs (each job times each model's share itself: model build and forward passes)."""
    totals: dict[str, list[float]] = {}
    for log in (results / "logs" / "embed_faces").rglob("*.log"):
        for match in map(EMBEDDED.search, log.read_text().splitlines()):
            if match:
                faces, seconds = totals.setdefault(match.group(1), [0, 0.0])
                totals[match.group(1)] = [faces + int(match.group(2)), seconds + float(match.group(3))]
    return {model: (int(faces), seconds) for model, (faces, seconds) in totals.items()}


def coding_seconds(results: Path, job: str) -> float:
    """Seconds of one code job's images as the job timed them: the encoder's CPU seconds (its process and
    children; wall seconds grow with other load) plus the decoder's seconds (wall: a small share)."""
    coding = pd.read_csv(results / "bitstreams" / job / "coding.csv")
    return float((coding.encode_cpu_seconds + coding.decode_seconds).sum())


def stage_section(results: Path) -> tuple[list[dict], pd.DataFrame]:
    benchmarks = read_benchmarks(results)
    if benchmarks.empty:
        raise SystemExit(f"{results}/benchmarks holds no benchmark files: run the workflow first")
    benchmarks[["unit", "items"]] = [stage_items(results, row.stage, row.job) for row in benchmarks.itertuples()]
    # Snakemake samples a job's CPU time now and then and misses ffmpeg children that live a few
    # seconds; code jobs time each encoder and decoder call themselves (coding.csv; one thread each).
    coding = benchmarks.stage.str.startswith("code ")
    benchmarks.loc[coding, "cpu_s"] = [coding_seconds(results, job) for job in benchmarks.job[coding]]
    rows = []
    for stage, jobs in benchmarks.groupby("stage", sort=False):
        items = int(jobs["items"].sum())
        rows.append({"stage": stage, "jobs": len(jobs), "unit": jobs.unit.iloc[0], "items": items,
                     "job_s": jobs.s.sum(), "cpu_s": jobs.cpu_s.sum(), "s_per_job": jobs.s.mean(),
                     "s_per_item": jobs.s.sum() / items if items else np.nan,
                     "items_per_s": items / jobs.s.sum() if jobs.s.sum() else np.nan,
                     "cpu_s_per_item": jobs.cpu_s.sum() / items if items else np.nan})
    for model, (faces, seconds) in embedding_cpu_by_model(results).items():  # each model's share of embed_faces
        rows.append({"stage": f"embed_faces: {model}", "unit": "face embeddings", "items": faces, "cpu_s": seconds,
                     "cpu_s_per_item": seconds / faces if faces else np.nan})
    return rows, benchmarks


# --- embedding -----------------------------------------------------------------------------------

def load_crops(results: Path) -> tuple[list[str], dict[str, list[dict[str, np.ndarray]]]]:
    """Codec points (original first) -> per shard, face id -> RGB crop; only faces every point has."""
    crop_root = results / "crops"
    points = sorted({str(path.parent.relative_to(crop_root)) for path in crop_root.rglob("shard-*.npz")})
    points = [point for point in points if point.count("/") <= 1]  # not the cross-resolution views
    if "original" not in points:
        raise SystemExit(f"{crop_root} has no original crops: run the workflow first")
    points.remove("original")
    points.insert(0, "original")
    crops = {}
    for point in points:
        crops[point] = []
        for path in sorted((crop_root / point).glob("shard-*.npz")):
            with np.load(path) as data:
                crops[point].append({face: data[face] for face in data.files})
    return points, crops


def embedding_section(results: Path, models: list[str], naive_faces: int, batch_size: int) -> tuple[list[dict], str]:
    os.environ.setdefault("DEEPFACE_HOME", str((ROOT / "resources" / "deepface").resolve()))
    os.environ["DEEPFACE_BACKEND_ENGINE"] = "tensorflow"  # what the workflow runs
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    from deepface import DeepFace
    from deepface.modules import modeling, preprocessing

    from icm_privacy.embeddings import cosine_similarity, embed_crops
    import_s = time.perf_counter() - started

    points, crops = load_crops(results)
    codec_points = points[1:]
    faces = len([face for shard in crops["original"] for face in shard])
    shards = list(range(len(crops["original"])))
    pairs = [(shard, face) for shard in shards for face in crops["original"][shard]][:naive_faces]
    rows = []
    for model_name in models:
        started = time.perf_counter()
        model = modeling.build_model(task="facial_recognition", model_name=model_name)
        build_s = time.perf_counter() - started
        height, width = model.input_shape

        def ours() -> dict[str, dict[str, np.ndarray]]:
            vectors = {}
            for point in points:
                vectors[point] = {}
                for shard in shards:
                    face_ids = list(crops[point][shard])
                    embedded = embed_crops([crops[point][shard][face] for face in face_ids], model_name, batch_size)
                    vectors[point].update(zip(face_ids, embedded))
            return vectors

        # Each batch exactly as DeepFace.represent prepares it (BGR, resized, normalised), so that
        # only model.forward is timed.
        batches = [
            np.concatenate([preprocessing.normalize_input(
                preprocessing.resize_image(np.ascontiguousarray(crop[:, :, ::-1]), (width, height)), "base")
                for crop in list(crops[point][shard].values())[start:start + batch_size]])
            for point in points for shard in shards for start in range(0, len(crops[point][shard]), batch_size)
        ]

        def bare_forward() -> None:
            for batch in batches:
                model.forward(batch)

        def naive() -> list[float]:
            similarities = []
            for point in codec_points:
                for shard, face in pairs:
                    result = DeepFace.verify(np.ascontiguousarray(crops["original"][shard][face][:, :, ::-1]),
                                             np.ascontiguousarray(crops[point][shard][face][:, :, ::-1]),
                                             model_name=model_name, detector_backend="skip",
                                             enforce_detection=False, align=False, silent=True)
                    similarities.append(1 - result["distance"])
            return similarities

        # First calls trace graphs for new batch shapes (TensorFlow): a per-job cost, timed apart;
        # the comparisons below are between warm runs.
        started = time.perf_counter()
        ours()
        first_pass_s = time.perf_counter() - started
        started = time.perf_counter()
        vectors = ours()
        ours_s = time.perf_counter() - started
        bare_forward()
        started = time.perf_counter()
        bare_forward()
        forward_s = time.perf_counter() - started
        DeepFace.verify(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), model_name=model_name,
                        detector_backend="skip", enforce_detection=False, align=False, silent=True)
        started = time.perf_counter()
        naive_similarities = naive()
        naive_measured_s = time.perf_counter() - started
        naive_s = naive_measured_s / (len(pairs) * len(codec_points)) * faces * len(codec_points)
        ours_similarities = [float(cosine_similarity(vectors["original"][face][None], vectors[point][face][None])[0])
                             for point in codec_points for _, face in pairs]
        embeddings = faces * len(points)
        rows.append({
            "model": model_name, "faces": faces, "points": len(points), "build_s": build_s,
            "first_pass_s": first_pass_s, "ours_s": ours_s, "ours_ms_per_face": 1000 * ours_s / embeddings,
            "forward_ms_per_face": 1000 * forward_s / embeddings, "ours_vs_forward": ours_s / forward_s,
            "naive_pairs_timed": len(pairs) * len(codec_points), "naive_s": naive_s, "speed_up": naive_s / ours_s,
            "max_cos_diff": float(np.max(np.abs(np.subtract(naive_similarities, ours_similarities)))),
        })
        print(f"embedding sweep: {model_name} measured", file=sys.stderr, flush=True)
    rows.append({"model": "all models", "faces": faces, "points": len(points),
                 "build_s": sum(row["build_s"] for row in rows), "ours_s": sum(row["ours_s"] for row in rows),
                 "naive_s": sum(row["naive_s"] for row in rows),
                 "speed_up": sum(row["naive_s"] for row in rows) / sum(row["ours_s"] for row in rows)})
    return rows, f"(deepface + TensorFlow import: {import_s:.1f} s, once per job)"


# --- DAG -----------------------------------------------------------------------------------------

def dag_section(workdir: Path, images: int, points: int, shards: int) -> list[dict]:
    from PIL import Image

    folder = workdir / "dag" / f"images-{images}"
    if len(list(folder.glob("*.png"))) != images:
        folder.mkdir(parents=True, exist_ok=True)
        generator = np.random.default_rng(0)
        for index in range(images):
            Image.fromarray(generator.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"img{index:05d}.png")
    # A COCO dataset, as val2017 is, so that the DAG holds its object detection jobs too (one box is
    # enough for detection not to be skipped).
    annotations = workdir / "dag" / f"instances-{images}.json"
    annotations.write_text(json.dumps({
        "images": [{"id": index, "file_name": f"img{index:05d}.png", "width": 16, "height": 16} for index in range(images)],
        "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [0, 0, 8, 8], "area": 64, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}]}))
    results = workdir / "dag" / f"results-{images}x{points}"
    config = run_config(ROOT / "config.yaml", results, shards=shards,
                        dataset={"kind": "coco", "images": str(folder), "annotations": str(annotations)},
                        codecs=[{"codec": "vvc", "qualities": list(range(22, 22 + points)),
                                 "options": {"preset": "faster", "qpa": False}}])
    seconds, output = snakemake("--dry-run", "--quiet", "all", "--configfile", str(config))
    detection_jobs = re.search(r"^detect_objects\s+(\d+)$", output, re.MULTILINE)
    return [{"step": "dry run (full DAG)", "images": images, "points": points, "shards": shards,
             "jobs": job_count(output), "detect_objects_jobs": int(detection_jobs.group(1)) if detection_jobs else 0,
             "s": seconds}]


# --- overhead ------------------------------------------------------------------------------------

def overhead_section(workdir: Path, config_path: Path, cores: int) -> tuple[list[dict], Path]:
    results = workdir / "overhead" / "results"
    shutil.rmtree(results, ignore_errors=True)  # every job of the run, none left from an earlier one
    config = run_config(config_path, results)
    wall, output = snakemake("--cores", str(cores), "--configfile", str(config))
    # Threads per benchmark file, from the job blocks of the log ("threads:" appears when above 1).
    threads = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) )", output):
        benchmark = re.search(r"^\s+benchmark: (\S+)$", block, re.MULTILINE)
        if benchmark:
            count = re.search(r"^\s+threads: (\d+)$", block, re.MULTILINE)
            threads[str(Path(benchmark.group(1)).resolve())] = int(count.group(1)) if count else 1
    benchmarks = read_benchmarks(results)
    benchmarks["threads"] = benchmarks.path.map(threads).fillna(1)
    core_s = float((benchmarks.s * benchmarks.threads).sum())
    jobs = len(re.findall(r"^Finished jobid: \d+", output, re.MULTILINE))
    row = {"config": str(config_path.relative_to(ROOT)) if config_path.is_relative_to(ROOT) else str(config_path),
           "cores": cores, "jobs": jobs, "benchmarked_jobs": len(benchmarks), "wall_s": wall,
           "sum_job_s": benchmarks.s.sum(), "sum_job_s_x_threads": core_s,
           "overhead_plain": 1 - benchmarks.s.sum() / cores / wall, "overhead": 1 - core_s / cores / wall}
    return [row], results


# --- projection ----------------------------------------------------------------------------------

# The study's configuration (Shindo et al.): COCO val2017, MTCNN faces at confidence >= 0.95 (and 0.975),
# VVC at four QPs and SA-ICM; here with two learned-codec points (the ICM codecs trained here) and the
# face models that run offline.
STUDY = {"images": 5000, "faces": 2732, "vvc_qps": [32, 35, 37, 40], "learned_points": 2,
         "models": ["SFace", "Facenet", "Dlib"], "thresholds": 2}


def learned_cpu_per_image(images: list[Path], codec: str = "icm-mse", quality: int = 2) -> float:
    """CPU seconds to code (encode, decode, likelihood estimate) one image with a learned codec, one thread."""
    import torch

    from icm_privacy.codecs import make_codec
    from icm_privacy.images import read_rgb8

    torch.set_num_threads(1)
    model = make_codec(codec, device="cpu", threads=1)
    model.model(quality)  # the model loads once per job: not a per-image cost
    started = time.process_time()
    with tempfile.TemporaryDirectory() as scratch:
        for path in images:
            rgb = read_rgb8(path)
            model.code(rgb, quality, Path(scratch) / "x.lic", Path(scratch) / "x.png", path.stem)
            model.estimated_bpp(rgb, quality)
    return (time.process_time() - started) / len(images)


def projection_section(results: Path, benchmarks: pd.DataFrame, overhead: float | None, cores: int,
                       privacy_cpu_s: float, learned_images: list[Path]) -> tuple[list[dict], str]:
    """COCO val2017 in the study's configuration (STUDY) on `cores` cores, from this run's measured costs.

    Costs are CPU seconds: the jobs' own (Snakemake's benchmark files; code jobs time every encoder and
    decoder call themselves, in coding.csv; embed jobs time each model, in their logs), not wall time,
    which grows with whatever else shares the machine. Per-image and per-face costs include the jobs'
    fixed costs (imports, model builds) spread over this run's shards; val2017's shards are larger, so
    they err high. privacy_metrics is one job: its CPU seconds at the study's size come from
    scripts/benchmark_privacy_scale.py (`privacy_cpu_s`) and run after everything else, on one core.
    """
    images, faces, points = STUDY["images"], STUDY["faces"], len(STUDY["vvc_qps"]) + STUDY["learned_points"]
    versions = points + 1  # every codec point and the originals
    run_images = sum(len(pd.read_csv(path)) for path in (results / "images").glob("shard-*/manifest.csv"))
    run_versions = len({job.rsplit("/", 1)[0] for job in benchmarks[benchmarks.stage == "crop_faces"].job})
    cpu = {stage: jobs.cpu_s.sum() for stage, jobs in benchmarks.groupby("stage")}
    items = {stage: jobs["items"].sum() for stage, jobs in benchmarks.groupby("stage")}
    vvc = benchmarks[benchmarks.stage == "code vvc"]
    vvc = vvc[vvc.job.str.split("/").str[1].astype(int).isin(STUDY["vvc_qps"])]  # job: vvc/<QP>/shard-<n>
    by_model = embedding_cpu_by_model(results)
    rows = [
        {"stage": "prepare_images", "per": "image", "cpu_s_per": cpu["prepare_images"] / run_images, "count": images},
        {"stage": "code vvc (vvenc medium, QP 32-40)", "per": "image x QP", "count": images * len(STUDY["vvc_qps"]),
         "cpu_s_per": vvc.cpu_s.sum() / vvc["items"].sum()},
        {"stage": "code icm-mse (learned, CPU, 1 thread)", "per": "image x point", "count": images * STUDY["learned_points"],
         "cpu_s_per": learned_cpu_per_image(learned_images)},
        {"stage": "detect_faces (MTCNN)", "per": "image", "cpu_s_per": cpu["detect_faces"] / run_images, "count": images},
        {"stage": "crop_faces", "per": "image x version", "cpu_s_per": cpu["crop_faces"] / (run_images * run_versions),
         "count": images * versions},
        *({"stage": f"embed_faces {model}", "per": "face x version", "cpu_s_per": by_model[model][1] / by_model[model][0],
           "count": faces * versions} for model in STUDY["models"] if model in by_model),
        {"stage": "detect_objects (YOLOv5n)", "per": "image x version", "count": images * versions,
         "cpu_s_per": cpu["detect_objects"] / items["detect_objects"]},
        {"stage": "measure_quality", "per": "image x point", "count": images * points,
         "cpu_s_per": cpu["measure_quality"] / items["measure_quality"]},
        {"stage": "tables and figures (tabulate, summarise, plots, ...)", "per": "image x point",
         "count": images * points, "cpu_s_per": sum(cpu.get(stage, 0) for stage in AGGREGATION_STAGES)
         / (run_images * (run_versions - 1))},
    ]
    for row in rows:
        row["cpu_h"] = row["cpu_s_per"] * row["count"] / 3600
    parallel_h = sum(row["cpu_h"] for row in rows)
    rows.append({"stage": "privacy_metrics (one job, after the rest)", "per": "run", "count": 1,
                 "cpu_s_per": privacy_cpu_s, "cpu_h": privacy_cpu_s / 3600})
    wall_h = parallel_h / cores / (1 - (overhead or 0)) + privacy_cpu_s / 3600
    rows.append({"stage": f"wall time on {cores} cores", "per": f"orchestration overhead {100 * (overhead or 0):.0f} %",
                 "wall_h": wall_h})
    missing = [model for model in STUDY["models"] if model not in by_model]
    note = (f"(this run: {run_images} images, {run_versions - 1} codec points, embedded models {', '.join(by_model)}; "
            f"the study's configuration: {images} images, {faces} faces at >= 0.95, VVC QP "
            f"{'/'.join(map(str, STUDY['vvc_qps']))} and {STUDY['learned_points']} learned points, models "
            f"{', '.join(STUDY['models'])}, {STUDY['thresholds']} thresholds; not measured, so left out: "
            f"{', '.join(missing) or 'nothing'}; GPU: nothing here ran on one, every figure is CPU)")
    return rows, note


AGGREGATION_STAGES = ["tabulate", "summarise", "tabulate_quality", "detection_accuracy", "plot_rate_similarity",
                      "plot_privacy", "plot_example_faces", "plot_rate_accuracy", "privacy_utility_frontier",
                      "plot_frontier", "record_config", "crop_faces_reduced"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--results", type=Path, help="a finished run (default: results/coco-persons if complete, "
                                                     "else the overhead run's results)")
    parser.add_argument("--models", nargs="+", help="face models for the embedding sweep (default: the run's)")
    parser.add_argument("--naive-faces", type=int, default=20,
                        help="faces per codec point timed with DeepFace.verify; the rest is extrapolated")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dag-images", type=int, default=5000)
    parser.add_argument("--dag-points", type=int, default=10)
    parser.add_argument("--dag-shards", type=int, default=64)
    parser.add_argument("--overhead-config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--project-cores", type=int, default=16)
    parser.add_argument("--privacy-cpu-s", type=float, default=81.0,
                        help="privacy_metrics' CPU seconds at the study's size (scripts/benchmark_privacy_scale.py: "
                             "162 CPU-s for 3,000 faces x 6 models x 6 points x 2 thresholds on 2026-12-03, so about "
                             "81 for the three offline models)")
    parser.add_argument("--workdir", type=Path, help="synthetic images and benchmark runs (default: a temp folder)")
    args = parser.parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="benchmark_pipeline_"))).resolve()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"# Pipeline benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n\n{platform.node()}: "
          f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.platform()}; load average at start "
          f"{os.getloadavg()[0]:.1f}; work folder {workdir}")

    summary = []
    overhead = dag_s = None
    results = args.results
    if "overhead" in args.sections:
        rows, overhead_results = overhead_section(workdir, args.overhead_config.resolve(), args.cores)
        print_table("Orchestration overhead: wall time vs rule time", rows)
        overhead = rows[0]["overhead"]
        summary.append({"measure": "orchestration overhead", "value": f"{100 * overhead:.1f} %"})
        if results is None and not (ROOT / "results/coco-persons/run_summary.md").is_file():
            results = overhead_results
    results = (results or ROOT / "results" / "coco-persons").resolve()
    benchmarks = embedding = None
    if {"stages", "projection"} & set(args.sections):
        rows, benchmarks = stage_section(results)
        print_table(f"Stage throughput ({results.relative_to(ROOT) if results.is_relative_to(ROOT) else results})", rows)
    if "embedding" in args.sections:
        with np.load(next((results / "embeddings" / "original").glob("shard-*.npz"))) as data:
            models = args.models or [key for key in data.files if key != "face_ids"]
        embedding, note = embedding_section(results, models, args.naive_faces, args.batch_size)
        print_table("Embedding sweep: batched per shard (ours) vs DeepFace.verify per pair vs bare forward",
                    embedding)
        print(note)
        summary.append({"measure": "embedding speed-up over naive verify", "value": "; ".join(
            f"{row['model']} {row['speed_up']:.1f}x" for row in embedding)})
        summary.append({"measure": "embedding per face vs bare forward", "value": "; ".join(
            f"{row['model']} {row['ours_vs_forward']:.2f}x" for row in embedding if "ours_vs_forward" in row)})
    if "dag" in args.sections:
        rows = dag_section(workdir, args.dag_images, args.dag_points, args.dag_shards)
        print_table("Snakemake DAG construction (dry run)", rows)
        dag_s = rows[-1]["s"]
        summary.append({"measure": "DAG dry run", "value": f"{dag_s:.1f} s ({rows[-1]['jobs']} jobs)"})
    if "projection" in args.sections:
        learned_images = sorted((ROOT.parent / "shared" / "datasets" / "coco-persons" / "images").glob("*.jpg"))[:10]
        rows, note = projection_section(results, benchmarks, overhead, args.project_cores, args.privacy_cpu_s,
                                        learned_images)
        print_table(f"Projection: COCO val2017, the study's configuration, on {args.project_cores} cores", rows)
        print(note)
        summary.append({"measure": f"COCO val2017 on {args.project_cores} cores", "value": f"{rows[-1]['wall_h']:.2f} h"})
    for row in summary:
        row["target"] = TARGETS.get(row["measure"], "")
    print_table("Summary", summary)


if __name__ == "__main__":
    main()
