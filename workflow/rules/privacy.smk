# Privacy metrics a reviewer would accept (re-identification, identification, TAR at fixed FAR, with
# bootstrap intervals), their curves against bpp, and example faces. Figures are separate rules.


rule privacy_metrics:
    localrule: True
    input:
        faces=f"{RESULTS}/tables/faces.csv",
        rates=f"{RESULTS}/tables/rates.csv",
        embeddings=flattened(shard_files("embeddings", EMBEDDED_VERSIONS)),
        adapters=list(ADAPTER_FILES.values()),
    output:
        table=report(f"{RESULTS}/tables/privacy.csv", category="Tables"),
        differences=report(f"{RESULTS}/tables/privacy_bd.csv", category="Tables"),
    params:
        embedding_files=shard_files("embeddings", EMBEDDED_VERSIONS),
        models=MODELS,
        thresholds=config["faces"]["thresholds"],
        dataset=config["dataset"],
        settings=config["privacy"],
        reference_codec=REFERENCE_CODEC,
        views=ATTACKER_VIEWS,
        adapter_files=ADAPTER_FILES,
    log:
        f"{RESULTS}/logs/privacy_metrics.log",
    benchmark:
        f"{RESULTS}/benchmarks/privacy_metrics.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/privacy_metrics.py"


rule plot_privacy:
    localrule: True
    input:
        f"{RESULTS}/tables/privacy.csv",
    output:
        png=report(f"{RESULTS}/figures/{{metric}}_vs_bpp_conf{{t}}.png", category="Privacy curves"),
        pdf=f"{RESULTS}/figures/{{metric}}_vs_bpp_conf{{t}}.pdf",
    wildcard_constraints:
        metric="reid_published|rank1|mean_cosine",
    log:
        f"{RESULTS}/logs/plot_privacy/{{metric}}_conf{{t}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_privacy/{{metric}}_conf{{t}}.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/plot_privacy.py"


rule plot_example_faces:
    localrule: True
    input:
        faces=f"{RESULTS}/tables/faces.csv",
        crops=flattened(shard_files("crops", ["original", *POINT_PATHS])),
    output:
        png=report(f"{RESULTS}/figures/example_faces.png", category="Example faces"),
        pdf=f"{RESULTS}/figures/example_faces.pdf",
    params:
        crop_files=shard_files("crops", ["original", *POINT_PATHS]),
        points=POINT_PATHS,
        model=MODELS[0],
        faces_shown=config["privacy"]["example_faces"],
    log:
        f"{RESULTS}/logs/plot_example_faces.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_example_faces.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/plot_example_faces.py"


rule privacy_utility_frontier:
    # COCO datasets only (needs detection mAP): at equal detection accuracy, how much identity is left.
    localrule: True
    input:
        privacy=f"{RESULTS}/tables/privacy.csv",
        detection=f"{RESULTS}/tables/detection.csv",
    output:
        table=report(f"{RESULTS}/tables/frontier.csv", category="Tables"),
        differences=report(f"{RESULTS}/tables/frontier_bd.csv", category="Tables"),
    params:
        reference_codec=REFERENCE_CODEC,
    log:
        f"{RESULTS}/logs/privacy_utility_frontier.log",
    benchmark:
        f"{RESULTS}/benchmarks/privacy_utility_frontier.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/privacy_utility_frontier.py"


rule plot_frontier:
    localrule: True
    input:
        f"{RESULTS}/tables/frontier.csv",
    output:
        png=report(f"{RESULTS}/figures/frontier_{{metric}}_conf{{t}}.png", category="Privacy-utility frontier"),
        pdf=f"{RESULTS}/figures/frontier_{{metric}}_conf{{t}}.pdf",
    wildcard_constraints:
        metric="reid_published|rank1|mean_cosine",
    log:
        f"{RESULTS}/logs/plot_frontier/{{metric}}_conf{{t}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_frontier/{{metric}}_conf{{t}}.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/plot_frontier.py"
