# Pixel fidelity beside the face and detection measures: PSNR (RGB, Y', face boxes found on the
# original, and for datasets with instance masks the contour band and the pixels off it) and MS-SSIM of
# every decoded image, one job per codec point and shard (so a decoded folder that is not kept can go
# once its shard is measured), then one table per image and per codec point.


rule contour_regions:
    input:
        f"{RESULTS}/images/shard-{{shard}}",
    output:
        f"{RESULTS}/quality/contours/shard-{{shard}}.npz",
    params:
        annotations=config["dataset"].get("annotations"),
    log:
        f"{RESULTS}/logs/contour_regions/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/contour_regions/shard-{{shard}}.tsv"
    resources:
        **compute_resources(mem_mb=2000, runtime=30),
    conda:
        "../../envs/quality.yaml"
    script:
        "../scripts/contour_regions.py"


rule measure_quality:
    input:
        images=f"{RESULTS}/images/shard-{{shard}}",
        decoded=f"{RESULTS}/decoded/{{point}}/shard-{{shard}}",
        faces=f"{RESULTS}/faces/shard-{{shard}}.csv",
        **({} if CONTOURS_SKIPPED else {"contours": f"{RESULTS}/quality/contours/shard-{{shard}}.npz"}),
    output:
        f"{RESULTS}/quality/{{point}}/shard-{{shard}}.csv",
    params:
        min_confidence=min(config["faces"]["thresholds"]),
    log:
        f"{RESULTS}/logs/measure_quality/{{point}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure_quality/{{point}}/shard-{{shard}}.tsv"
    resources:
        **compute_resources(mem_mb=2000, runtime=30),
    conda:
        "../../envs/quality.yaml"
    script:
        "../scripts/measure_quality.py"


rule tabulate_quality:
    localrule: True
    input:
        flattened(shard_files("quality", POINT_PATHS, "csv")),
    output:
        per_image=report(f"{RESULTS}/tables/quality.csv", category="Tables"),
        summary=report(f"{RESULTS}/tables/quality_summary.csv", category="Tables"),
    params:
        quality_files=shard_files("quality", POINT_PATHS, "csv"),
    log:
        f"{RESULTS}/logs/tabulate_quality.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_quality.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/tabulate_quality.py"
