# Aggregation: per-image rates and per-face similarities, then Table 1 per confidence threshold,
# then figures drawn from Table 1 alone (restyling a figure re-runs only the plotting rule).


rule tabulate:
    localrule: True
    input:
        shards=lambda w: [shard_folder(s) for s in SHARDS],
        faces=expand(f"{RESULTS}/faces/shard-{{shard}}.csv", shard=SHARDS),
        bitstreams=lambda w: [bitstream(p, i) for p in POINT_PATHS for i in all_accepted_images()],
        embeddings=expand(
            f"{RESULTS}/embeddings/{{point}}/shard-{{shard}}.npz",
            point=["original", *POINT_PATHS],
            shard=SHARDS,
        ),
    output:
        rates=f"{RESULTS}/tables/rates.csv",
        faces=f"{RESULTS}/tables/faces.csv",
        manifest=f"{RESULTS}/tables/images.csv",
    params:
        models=MODELS,
        points=POINT_PATHS,
        results=RESULTS,
        bitstream_extensions=CODEC_EXTENSIONS,
    log:
        f"{RESULTS}/logs/tabulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../../scripts/tabulate.py"


rule summarise:
    localrule: True
    input:
        rates=f"{RESULTS}/tables/rates.csv",
        faces=f"{RESULTS}/tables/faces.csv",
        manifest=f"{RESULTS}/tables/images.csv",
    output:
        tables=expand(f"{RESULTS}/tables/table1_conf{{t}}.{{ext}}", t=THRESHOLDS, ext=["csv", "md"]),
        summary=f"{RESULTS}/run_summary.md",
    params:
        models=MODELS,
        thresholds=config["faces"]["thresholds"],
    log:
        f"{RESULTS}/logs/summarise.log",
    conda:
        "../../envs/results.yaml"
    script:
        "../../scripts/summarise.py"


rule plot_rate_similarity:
    localrule: True
    input:
        f"{RESULTS}/tables/table1_conf{{t}}.csv",
    output:
        expand(f"{RESULTS}/figures/rate_similarity_conf{{{{t}}}}.{{ext}}", ext=["png", "pdf"]),
    params:
        models=MODELS,
    log:
        f"{RESULTS}/logs/plot_rate_similarity/conf{{t}}.log",
    conda:
        "../../envs/results.yaml"
    script:
        "../../scripts/plot_rate_similarity.py"
