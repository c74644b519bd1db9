# Configuration, the image list and path helpers. Everything here is read at start-up; the
# configuration is refused (with the offending key named) before any job runs.
import os
import sys

from icm_privacy.config import available_codecs, codec_points, cross_resolution_points, validate_config
from icm_privacy.datasets import list_images, shard_of, unread_files
from icm_privacy.detection_metrics import skip_reason
from icm_privacy.weights import MANIFEST

validate_config(config)
config["codecs"], CODEC_BY_LABEL, SKIPPED_CODECS = available_codecs(config)
for message in SKIPPED_CODECS:
    print(f"icm-privacy: {message}", file=sys.stderr)

RESULTS = config["results"]
SHARDS = list(range(config["shards"]))
IMAGES = list_images(config["dataset"])  # image id -> source file
UNREAD = unread_files(config["dataset"])  # path -> why the run does not read it (listed in images.csv)
for path, reason in UNREAD.items():
    print(f"icm-privacy: {path} is not read: {reason}", file=sys.stderr)
POINTS = codec_points(config)
MODELS = config["faces"]["models"]
THRESHOLDS = [f"{t:.3f}" for t in config["faces"]["thresholds"]]
DEEPFACE_HOME = os.path.abspath(config["weights"]["deepface_home"])
GPU_PER_MODEL_JOB = 1 if config["gpu"] else 0  # face detection, embeddings, learned codecs, detection


def compute_resources(mem_mb, runtime, gpu=0):
    """A compute job's resources. Memory and time grow with each attempt, so a job killed at either
    limit is retried with more (`retries` in profiles/slurm). A job that asks for a GPU goes to the GPU
    partition whatever its rule is called, and no other job does (they keep the profile's default)."""
    resources = {"mem_mb": lambda wildcards, attempt: mem_mb * attempt,
                 "runtime": lambda wildcards, attempt: runtime * attempt, "gpu": gpu}
    if gpu:  # unset, the variable reaches sbatch as its own name and sbatch refuses it, naming it
        resources["slurm_partition"] = os.path.expandvars("$ICM_SLURM_GPU_PARTITION")
    return resources


DETECTION_SKIPPED = (
    "detection is disabled in the configuration" if not config["detection"]["enabled"]
    else skip_reason(config["dataset"].get("annotations"), config["dataset"]["kind"])
)
if DETECTION_SKIPPED:
    print(f"icm-privacy: {DETECTION_SKIPPED}", file=sys.stderr)


wildcard_constraints:
    shard=r"\d+",
    quality=r"[0-9.]+",
    point=r"original|[A-Za-z0-9][A-Za-z0-9_.-]*/[0-9.]+",
    label=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    # what embed_faces embeds: the originals, a codec point's crops, or a cross-resolution view
    version=r"original|[A-Za-z0-9][A-Za-z0-9_.-]*/[0-9.]+(/reduced|/reduced-original)?",


def shard_sources(shard):
    return {i: str(path) for i, path in IMAGES.items() if shard_of(i, len(SHARDS)) == int(shard)}


def shard_version(point, shard):
    """A folder of one shard's images: the prepared originals, or a codec point's decoded images."""
    if point == "original":
        return f"{RESULTS}/images/shard-{shard}"
    return f"{RESULTS}/decoded/{point}/shard-{shard}"


def decoded_output(folder):
    """A code job's folder of decoded images; with `keep_decoded: false` a temporary one, deleted once
    every job that reads it (crops, detections, PSNR) is done, so that disk holds the bitstreams only."""
    return directory(folder) if config["keep_decoded"] else temp(directory(folder))


POINT_PATHS = [f"{p.label}/{p.quality_text}" for p in POINTS]
# The codec the others are compared with at equal bpp or equal detection mAP.
REFERENCE_CODEC = config["privacy"].get("reference_codec") or POINT_PATHS[0].split("/")[0]
# Downscale points the cross-resolution attacker also matches, at the reduced resolution.
REDUCED_OPTIONS = {f"{p.label}/{p.quality_text}": p.options for p in cross_resolution_points(config)}
REDUCED_POINTS = list(REDUCED_OPTIONS)
# Every image version whose face crops are embedded: originals, codec points, cross-resolution views.
EMBEDDED_VERSIONS = ["original", *POINT_PATHS,
                     *(f"{point}/{view}" for point in REDUCED_POINTS for view in ("reduced", "reduced-original"))]


def shard_files(kind, versions, suffix="npz"):
    """version -> the per-shard files of kind `crops`, `embeddings` or `quality` for that version of the images."""
    return {v: expand(f"{RESULTS}/{kind}/{v}/shard-{{shard}}.{suffix}", shard=SHARDS) for v in versions}


def flattened(files_by_version):
    return [path for paths in files_by_version.values() for path in paths]


def codec_face_inputs(entry):
    """Extra inputs of a codec entry: face boxes for de-identification, the crop gallery for k-Same."""
    inputs = {}
    if CODEC_BY_LABEL[entry["label"]].needs_faces:
        inputs["faces"] = f"{RESULTS}/faces/shard-{{shard}}.csv"
    if entry["codec"] == "k-same-pixel":
        inputs["gallery"] = expand(f"{RESULTS}/crops/original/shard-{{shard}}.npz", shard=SHARDS)
    return inputs


def final_outputs(wildcards):
    return [
        *expand(f"{RESULTS}/tables/table1_conf{{t}}.{{ext}}", t=THRESHOLDS, ext=["csv", "md"]),
        *expand(f"{RESULTS}/figures/rate_similarity_conf{{t}}.{{ext}}", t=THRESHOLDS, ext=["png", "pdf"]),
        f"{RESULTS}/run_summary.md",
        f"{RESULTS}/tables/privacy_bd.csv",
        *expand(f"{RESULTS}/figures/{{metric}}_vs_bpp_conf{{t}}.{{ext}}", metric=["reid_published", "rank1"],
                t=THRESHOLDS, ext=["png", "pdf"]),
        *expand(f"{RESULTS}/figures/example_faces.{{ext}}", ext=["png", "pdf"]),
        f"{RESULTS}/config.yaml",
        *([] if DETECTION_SKIPPED else [
            *expand(f"{RESULTS}/figures/rate_detection.{{ext}}", ext=["png", "pdf"]),
            f"{RESULTS}/tables/frontier_bd.csv",
            *expand(f"{RESULTS}/figures/frontier_{{metric}}_conf{{t}}.{{ext}}", metric=["reid_published", "rank1"],
                    t=THRESHOLDS, ext=["png", "pdf"]),
        ]),
    ]
