# Training the shipped icm-* codecs (docs/icm_training.md); not part of `all`.
# Run: snakemake --cores 2 icm_weights   (then copy results/icm-training/weights/* to resources/weights/icm/)
# Jobs train on the CPU; scripts/train_icm_on_gpu.sh runs the GPU part of the recipe in the same folder.
# Each stage of the recipe (src/icm_privacy/icm_recipe.py) trains in the training folder the repository
# carries (checkpoints, logs, the resume state of the stage in progress), so a job continues where
# training stopped, on any machine; its output here is a copy of the stage's checkpoint. Empty that
# folder to train from scratch.

rule icm_stage:
    input:
        icm_stage_input,
    output:
        f"{ICM_TRAINING}/{{stage}}.pth.tar",
    wildcard_constraints:
        stage="|".join(stage.name for stage in STAGES),
    params:
        training_folder=ICM_STATE,
        datasets=str(DATASETS),
        detector=str(DETECTOR),
    threads: 2
    resources:
        runtime=60 * 24,
    log:
        f"{ICM_TRAINING}/logs/{{stage}}.log",
    conda:
        "../../envs/learned.yaml"
    script:
        "../scripts/icm_stage.py"


rule icm_weights:
    input:
        expand(f"{ICM_TRAINING}/{{stage}}.pth.tar", stage=sorted({s for points in SHIPPED.values() for s in points.values()})),
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
