# Machine-task accuracy: YOLOv5 on the originals and on every decoded image, COCO mAP per codec point.
# Only for COCO datasets (they have instance annotations); otherwise skipped with a message at start-up.


rule detect_objects:
    input:
        lambda w: shard_version(w.point, w.shard),
    output:
        f"{RESULTS}/detections/{{point}}/shard-{{shard}}.json",
    params:
        settings=config["detection"],
        dataset=config["dataset"],
    threads: 1
    resources:
        **compute_resources(mem_mb=3000, runtime=240, gpu=GPU_PER_MODEL_JOB),
    log:
        f"{RESULTS}/logs/detect_objects/{{point}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect_objects/{{point}}/shard-{{shard}}.tsv"
    conda:
        "../../envs/detection.yaml"
    script:
        "../scripts/detect_objects.py"


rule detection_accuracy:
    localrule: True
    input:
        detections=expand(f"{RESULTS}/detections/{{point}}/shard-{{shard}}.json", point=["original", *POINT_PATHS], shard=SHARDS),
        rates=f"{RESULTS}/tables/rates.csv",
        manifest=f"{RESULTS}/tables/images.csv",
    output:
        report(f"{RESULTS}/tables/detection.csv", category="Tables"),
    params:
        detections={p: expand(f"{RESULTS}/detections/{p}/shard-{{shard}}.json", shard=SHARDS) for p in ["original", *POINT_PATHS]},
        dataset=config["dataset"],
    log:
        f"{RESULTS}/logs/detection_accuracy.log",
    benchmark:
        f"{RESULTS}/benchmarks/detection_accuracy.tsv"
    conda:
        "../../envs/detection.yaml"
    script:
        "../scripts/detection_accuracy.py"


rule plot_rate_accuracy:
    localrule: True
    input:
        f"{RESULTS}/tables/detection.csv",
    output:
        png=report(f"{RESULTS}/figures/rate_detection.png", category="Detection accuracy"),
        pdf=f"{RESULTS}/figures/rate_detection.pdf",
    log:
        f"{RESULTS}/logs/plot_rate_accuracy.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_rate_accuracy.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/plot_rate_accuracy.py"
