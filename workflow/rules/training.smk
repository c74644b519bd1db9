# Training the shipped icm-edge / icm-mse codecs (docs/icm_training.md); not part of `all`.
# Run: snakemake --cores 2 icm_weights   (then copy results/icm-training/weights/* to resources/weights/icm/)
# A killed job resumes from its last checkpoint when rerun (--rerun-incomplete keeps its resume state).
from icm_privacy.training import ICM_VARIANTS

ICM_TRAINING = "results/icm-training"
ICM_POINTS = [f"{codec}/{rate}" for codec, rates in ICM_VARIANTS.items() for rate in rates]
ICM_RUNS = [f"{codec}-{rate}" for codec, rates in ICM_VARIANTS.items() for rate in rates]  # file names
COCO_TRAIN = "../shared/datasets/coco-train"


rule icm_base:
    output:
        checkpoint=f"{ICM_TRAINING}/base.pth.tar",
        log=f"{ICM_TRAINING}/base.csv",
    params:
        images=f"{COCO_TRAIN}/images",
        annotations=f"{COCO_TRAIN}/instances.json",
    threads: 2
    resources:
        runtime=240,
    log:
        f"{ICM_TRAINING}/logs/base.log",
    conda:
        "../../envs/learned.yaml"
    script:
        "../../scripts/train_icm.py"


rule icm_variant:
    input:
        base=f"{ICM_TRAINING}/base.pth.tar",
    output:
        checkpoint=f"{ICM_TRAINING}/{{codec}}-{{rate}}.pth.tar",
        log=f"{ICM_TRAINING}/{{codec}}-{{rate}}.csv",
    wildcard_constraints:
        codec="icm-[a-z]+",
        rate=r"\d+",
    params:
        images=f"{COCO_TRAIN}/images",
        annotations=f"{COCO_TRAIN}/instances.json",
    threads: 2
    resources:
        runtime=240,
    log:
        f"{ICM_TRAINING}/logs/{{codec}}-{{rate}}.log",
    conda:
        "../../envs/learned.yaml"
    script:
        "../../scripts/train_icm.py"


rule icm_weights:
    input:
        checkpoints=expand(f"{ICM_TRAINING}/{{run}}.pth.tar", run=ICM_RUNS),
        logs=expand(f"{ICM_TRAINING}/{{run}}.csv", run=["base", *ICM_RUNS]),
    output:
        manifest=f"{ICM_TRAINING}/weights/manifest.json",
        png=f"{ICM_TRAINING}/training_curves.png",
        pdf=f"{ICM_TRAINING}/training_curves.pdf",
    params:
        points=ICM_POINTS,
    log:
        f"{ICM_TRAINING}/logs/weights.log",
    conda:
        "../../envs/learned.yaml"
    script:
        "../../scripts/ship_icm_weights.py"
