# Configuration, the image list and path helpers. Everything here is read at start-up; the
# configuration is refused (with the offending key named) before any job runs.
import os
import sys

from icm_privacy.attackers import ADAPTED, RESTORED
from icm_privacy.config import (
    attacked_points,
    check_gallery_images,
    codec_points,
    cross_resolution_points,
    entry_source,
    prepare_run,
    user_errors,
)
from icm_privacy.datasets import (
    attack_training_images,
    contour_skip_reason,
    detection_skip_reason,
    list_images,
    shard_of,
    unread_files,
)
from icm_privacy.icm_recipe import DATASETS, DETECTOR, SHIPPED, STAGES, is_done, stage_named
from icm_privacy.points import PointKey, Threshold
from icm_privacy.tables import CROSS_RESOLUTION, STANDARD_ATTACKER
from icm_privacy.weights import MANIFEST

# config["codecs"] keeps the entries that run here; an optional entry that cannot is skipped, and listed
# in run_summary.md and the recorded configuration with the reason.
with user_errors():
    RECORDED_CONFIG, CODEC_BY_LABEL, SKIPPED_CODECS = prepare_run(config)
    IMAGES = list_images(config["dataset"])  # image id -> source file
    check_gallery_images(config, IMAGES)
    UNREAD = unread_files(config["dataset"])  # path -> why the run does not read it (listed in images.csv)
SKIPPED = [str(entry) for entry in SKIPPED_CODECS]
for message in SKIPPED:
    print(f"icm-privacy: {message}", file=sys.stderr)

RESULTS = config["results"]
SHARDS = list(range(config["shards"]))
for path, reason in UNREAD.items():
    print(f"icm-privacy: {path} is not read: {reason}", file=sys.stderr)
POINTS = codec_points(config)
MODELS = config["faces"]["models"]
THRESHOLDS = [Threshold(t).text for t in config["faces"]["thresholds"]]  # as in file names
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


with user_errors():
    DETECTION_SKIPPED = (
        "detection is disabled in the configuration" if not config["detection"]["enabled"]
        else detection_skip_reason(config["dataset"].get("annotations"), config["dataset"]["kind"])
    )
    CONTOURS_SKIPPED = contour_skip_reason(config["dataset"].get("annotations"), config["dataset"]["kind"])
if DETECTION_SKIPPED:
    print(f"icm-privacy: {DETECTION_SKIPPED}", file=sys.stderr)


wildcard_constraints:
    shard=r"\d+",
    quality=r"[0-9.]+",
    point=r"original|[A-Za-z0-9][A-Za-z0-9_.-]*/[0-9.]+",
    label=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    # what embed_faces embeds: the originals, a codec point's crops, or a cross-resolution view
    version=r"original|[A-Za-z0-9][A-Za-z0-9_.-]*/[0-9.]+(/reduced|/reduced-original|/restored)?",


def shard_sources(shard, images=IMAGES, shards=SHARDS):
    return {i: str(path) for i, path in images.items() if shard_of(i, len(shards)) == int(shard)}


def shard_version(point, shard, root=RESULTS):
    """A folder of one shard's images: the prepared originals, or a codec point's decoded images."""
    if point == "original":
        return f"{root}/images/shard-{shard}"
    return f"{root}/decoded/{point}/shard-{shard}"


def decoded_output(folder):
    """A code job's folder of decoded images; with `keep_decoded: false` a temporary one, deleted once
    every job that reads it (crops, detections, PSNR) is done, so that disk holds the bitstreams only."""
    return directory(folder) if config["keep_decoded"] else temp(directory(folder))


POINT_BY_PATH = {p.key.path: p for p in POINTS}
POINT_PATHS = list(POINT_BY_PATH)
# The codec the others are compared with at equal bpp or equal detection mAP.
REFERENCE_CODEC = config["privacy"].get("reference_codec") or POINTS[0].label
# Downscale points the cross-resolution attacker also matches, at the reduced resolution.
REDUCED = {p.key.path: p for p in cross_resolution_points(config)}
REDUCED_POINTS = list(REDUCED)
# Attackers who learn from a codec's output (attackers.smk): the points they attack, and the images they
# learn from, in their own folder (never an evaluated image: refused at start-up).
ATTACKED_POINTS = [point.key.path for point in attacked_points(config)]
ADAPTIVE = config["privacy"]["attackers"] if ATTACKED_POINTS else []
RESTORED_POINTS = ATTACKED_POINTS if RESTORED in ADAPTIVE else []
RESTORED_LABELS = list(dict.fromkeys(PointKey.parse(point).label for point in RESTORED_POINTS))
ADAPTED_POINTS = ATTACKED_POINTS if ADAPTED in ADAPTIVE else []
ATTACKERS = f"{RESULTS}/attackers"
ATTACK_TRAINING = f"{ATTACKERS}/training"
ADAPTER_FILES = {point: f"{ATTACKERS}/adapters/{point}.npz" for point in ADAPTED_POINTS}
ATTACK_SHARDS = list(range(config["privacy"]["attack_training"]["shards"]))
with user_errors():
    ATTACK_IMAGES = attack_training_images(config["privacy"]["attack_training"], IMAGES) if ADAPTIVE else {}
# attacker -> the codec points it scores (tabulate, privacy_metrics)
ATTACKER_VIEWS = {STANDARD_ATTACKER: POINT_PATHS, CROSS_RESOLUTION: REDUCED_POINTS,
                  **{attacker: ATTACKED_POINTS for attacker in ADAPTIVE}}
# Every image version whose face crops are embedded: originals, codec points, cross-resolution views,
# restored faces.
EMBEDDED_VERSIONS = ["original", *POINT_PATHS,
                     *(f"{point}/{view}" for point in REDUCED_POINTS for view in ("reduced", "reduced-original")),
                     *(f"{point}/restored" for point in RESTORED_POINTS)]


def coded_folders(label):
    """Rule-name prefix -> the folder whose images a codec entry codes: the evaluated images, and the
    attacker's training images where a learning attacker attacks the entry."""
    attacked = any(PointKey.parse(point).label == label for point in ATTACKED_POINTS)
    return {"": RESULTS, **({"attack_": ATTACK_TRAINING} if attacked else {})}


def attack_decoded_folders(label):
    """quality -> its training shards' decoded folders, for each attacked point of entry `label` in order."""
    return {key.quality: expand(f"{ATTACK_TRAINING}/decoded/{key.path}/shard-{{shard}}", shard=ATTACK_SHARDS)
            for key in map(PointKey.parse, ATTACKED_POINTS) if key.label == label}


def point_quality(label):
    """A code job's quality, as the configuration wrote it (32, not the wildcard's "32")."""
    return lambda wildcards: POINT_BY_PATH[f"{label}/{wildcards.quality}"].quality


def shard_files(kind, versions, suffix="npz"):
    """version -> the per-shard files of kind `crops`, `embeddings` or `quality` for that version of the images."""
    return {v: expand(f"{RESULTS}/{kind}/{v}/shard-{{shard}}.{suffix}", shard=SHARDS) for v in versions}


def flattened(files_by_version):
    return [path for paths in files_by_version.values() for path in paths]


def codec_inputs(entry, root=RESULTS):
    """Extra inputs of a codec entry's jobs on the images of `root`: face boxes for de-identification, the
    crop gallery for k-Same, and an import's files (so that replacing one re-runs its point's jobs)."""
    codec, inputs = CODEC_BY_LABEL[entry["label"]], {}
    if codec.needs_faces:
        inputs["faces"] = f"{root}/faces/shard-{{shard}}.csv"
    if entry["codec"] == "k-same-pixel":
        inputs["gallery"] = expand(f"{RESULTS}/crops/original/shard-{{shard}}.npz", shard=SHARDS)
    if entry["codec"] == "import":
        inputs["imported"] = imported_files(codec, entry["label"])
    return inputs


def imported_files(codec, label):
    quality = point_quality(label)
    return lambda wildcards: codec.files(quality(wildcards), shard_sources(wildcards.shard))


def final_outputs(wildcards):
    return [
        *expand(f"{RESULTS}/tables/table1_conf{{t}}.{{ext}}", t=THRESHOLDS, ext=["csv", "md"]),
        *expand(f"{RESULTS}/figures/rate_similarity_conf{{t}}.{{ext}}", t=THRESHOLDS, ext=["png", "pdf"]),
        f"{RESULTS}/run_summary.md",
        f"{RESULTS}/tables/privacy_bd.csv",
        f"{RESULTS}/tables/rate_bd.csv",
        *expand(f"{RESULTS}/figures/{{metric}}_vs_bpp_conf{{t}}.{{ext}}", metric=["reid_published", "rank1"],
                t=THRESHOLDS, ext=["png", "pdf"]),
        *expand(f"{RESULTS}/figures/example_faces.{{ext}}", ext=["png", "pdf"]),
        f"{RESULTS}/config.yaml",
        *(expand(f"{RESULTS}/figures/codec_gallery.{{ext}}", ext=["png", "pdf"]) if config["gallery"]["images"] else []),
        *([] if DETECTION_SKIPPED else [
            *expand(f"{RESULTS}/figures/rate_detection.{{ext}}", ext=["png", "pdf"]),
            f"{RESULTS}/tables/frontier_bd.csv",
            *expand(f"{RESULTS}/figures/frontier_{{metric}}_conf{{t}}.{{ext}}", metric=["reid_published", "rank1"],
                    t=THRESHOLDS, ext=["png", "pdf"]),
        ]),
    ]


# Training the shipped icm-* codecs (training.smk): the checkpoints it copies and the folder it trains in.
ICM_TRAINING = "results/icm-training"
ICM_STATE = "resources/weights/icm/training"


def icm_stage_input(wildcards):
    """The stage it is fine-tuned from, unless the stage is done already (it then needs nothing)."""
    init = stage_named(wildcards.stage).init
    return [f"{ICM_TRAINING}/{init}.pth.tar"] if init and not is_done(ICM_STATE, wildcards.stage) else []
