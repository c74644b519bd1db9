# Training the shipped icm-edge / icm-mse codecs (docs/icm_training.md); not part of `all`.
# Run: snakemake --cores 2 icm_weights   (then copy results/icm-training/weights/* to resources/weights/icm/)
# Each stage of the recipe (src/icm_privacy/icm_recipe.py) trains in the training folder the repository
# carries (checkpoints, logs, the resume state of the stage in progress), so a job continues where
# training stopped, on any machine; its output here is a copy of the stage's checkpoint. Empty that
# folder to train from scratch.
from icm_privacy.icm_recipe import STAGES

ICM_TRAINING = "results/icm-training"
ICM_STATE = "resources/weights/icm/training"
COCO_TRAIN = "../shared/datasets/coco-train"


rule icm_base:
    output:
        f"{ICM_TRAINING}/base.pth.tar",
    params:
        training_folder=ICM_STATE,
        images=f"{COCO_TRAIN}/images",
        annotations=f"{COCO_TRAIN}/instances.json",
    threads: 2
    resources:
        runtime=60 * 24,
    log:
        f"{ICM_TRAINING}/logs/base.log",
    conda:
        "../../envs/learned.yaml"
    script:
        "../scripts/icm_base.py"


rule icm_variant:
    input:
        base=f"{ICM_TRAINING}/base.pth.tar",
    output:
        f"{ICM_TRAINING}/{{stage}}.pth.tar",
    wildcard_constraints:
        stage=r"icm-(edge|mse)-\d+",
    params:
        training_folder=ICM_STATE,
        images=f"{COCO_TRAIN}/images",
        annotations=f"{COCO_TRAIN}/instances.json",
    threads: 2
    resources:
        runtime=60 * 8,
    log:
        f"{ICM_TRAINING}/logs/{{stage}}.log",
    conda:
        "../../envs/learned.yaml"
    script:
        "../scripts/icm_variant.py"


rule icm_weights:
    input:
        expand(f"{ICM_TRAINING}/{{stage}}.pth.tar", stage=[stage.name for stage in STAGES]),
    output:
        manifest=f"{ICM_TRAINING}/weights/manifest.json",
        png=f"{ICM_TRAINING}/training_curves.png",
        pdf=f"{ICM_TRAINING}/training_curves.pdf",
    params:
        training_folder=ICM_STATE,
    log:
        f"{ICM_TRAINING}/logs/weights.log",
    conda:
        "../../envs/learned.yaml"
    script:
        "../scripts/icm_weights.py"
