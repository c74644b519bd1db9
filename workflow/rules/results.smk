# Aggregation: per-image rates and per-face similarities, then Table 1 per confidence threshold and the
# codecs' BD differences against each other, then figures drawn from Table 1 alone (restyling a figure
# re-runs only the plotting rule).


rule tabulate:
    localrule: True
    input:
        shards=expand(f"{RESULTS}/images/shard-{{shard}}", shard=SHARDS),
        faces=expand(f"{RESULTS}/faces/shard-{{shard}}.csv", shard=SHARDS),
        bitstreams=expand(f"{RESULTS}/bitstreams/{{point}}/shard-{{shard}}", point=POINT_PATHS, shard=SHARDS),
        embeddings=flattened(shard_files("embeddings", EMBEDDED_VERSIONS)),
        adapters=list(ADAPTER_FILES.values()),
    output:
        rates=f"{RESULTS}/tables/rates.csv",
        faces=f"{RESULTS}/tables/faces.csv",
        manifest=f"{RESULTS}/tables/images.csv",
    params:
        models=MODELS,
        coded_folders={p: expand(f"{RESULTS}/bitstreams/{p}/shard-{{shard}}", shard=SHARDS) for p in POINT_PATHS},
        embedding_files=shard_files("embeddings", EMBEDDED_VERSIONS),
        views=ATTACKER_VIEWS,
        adapter_files=ADAPTER_FILES,
        unread=UNREAD,
    log:
        f"{RESULTS}/logs/tabulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/tabulate.py"


rule summarise:
    localrule: True
    input:
        rates=f"{RESULTS}/tables/rates.csv",
        faces=f"{RESULTS}/tables/faces.csv",
        manifest=f"{RESULTS}/tables/images.csv",
        quality=f"{RESULTS}/tables/quality_summary.csv",
        **({} if DETECTION_SKIPPED else {"detection": f"{RESULTS}/tables/detection.csv"}),
        **({"restorers": f"{RESULTS}/tables/restorers.csv", "adapters": f"{RESULTS}/tables/adapters.csv"}
           if ADAPTIVE else {}),
    output:
        tables=expand(f"{RESULTS}/tables/table1_conf{{t}}.{{ext}}", t=THRESHOLDS, ext=["csv", "md"]),
        rate_bd=f"{RESULTS}/tables/rate_bd.csv",
        summary=report(f"{RESULTS}/run_summary.md", category="Tables"),
    params:
        models=MODELS,
        thresholds=config["faces"]["thresholds"],
        skipped=SKIPPED,
        unmeasured=[reason for reason in (CONTOURS_SKIPPED,) if reason],
    log:
        f"{RESULTS}/logs/summarise.log",
    benchmark:
        f"{RESULTS}/benchmarks/summarise.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/summarise.py"


rule record_config:
    localrule: True
    output:
        report(f"{RESULTS}/config.yaml", category="Configuration", caption="../report/config.rst"),
    params:
        config=RECORDED_CONFIG,
        skipped=SKIPPED,
    log:
        f"{RESULTS}/logs/record_config.log",
    benchmark:
        f"{RESULTS}/benchmarks/record_config.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/record_config.py"


rule plot_rate_similarity:
    localrule: True
    input:
        f"{RESULTS}/tables/table1_conf{{t}}.csv",
    output:
        report(f"{RESULTS}/figures/rate_similarity_conf{{t}}.png", category="Rate and similarity"),
        f"{RESULTS}/figures/rate_similarity_conf{{t}}.pdf",
    params:
        models=MODELS,
    log:
        f"{RESULTS}/logs/plot_rate_similarity/conf{{t}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_rate_similarity/conf{{t}}.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/plot_rate_similarity.py"


rule plot_codec_gallery:
    # Fig. 1 of the study, for any run: chosen images as each codec decodes them at about one bitrate
    # (config `gallery`), their largest face beside them.
    localrule: True
    input:
        rates=f"{RESULTS}/tables/rates.csv",
        faces=f"{RESULTS}/tables/faces.csv",
        images=expand(f"{RESULTS}/images/shard-{{shard}}", shard=SHARDS),
        decoded=expand(f"{RESULTS}/decoded/{{point}}/shard-{{shard}}", point=POINT_PATHS, shard=SHARDS),
    output:
        png=report(f"{RESULTS}/figures/codec_gallery.png", category="Codecs side by side"),
        pdf=f"{RESULTS}/figures/codec_gallery.pdf",
    params:
        folders={p: [shard_version(p, s) for s in SHARDS] for p in ["original", *POINT_PATHS]},
        gallery=config["gallery"],
        min_confidence=min(config["faces"]["thresholds"]),
    log:
        f"{RESULTS}/logs/plot_codec_gallery.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_codec_gallery.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/plot_codec_gallery.py"
