# Attackers who learn from a codec's output (privacy.attackers; docs/privacy_metrics.md). Their training
# images (privacy.attack_training: coco-train2017, never an evaluated image) go through the evaluated
# images' own rules in {ATTACK_TRAINING}: prepared, faces found on the originals, coded at every attacked
# codec point (the code_attack_<label> rules of codecs.smk), cropped and embedded. A restorer is trained per
# codec entry and applied to the evaluated faces of each of its points (their crops are embedded by
# embed_faces, as the version <point>/restored); an embedding adapter is fitted per codec point.


use rule prepare_images as prepare_attack_images with:
    input:
        lambda w: list(shard_sources(w.shard, ATTACK_IMAGES, ATTACK_SHARDS).values()),
    output:
        directory(f"{ATTACK_TRAINING}/images/shard-{{shard}}"),
    params:
        sources=lambda w: shard_sources(w.shard, ATTACK_IMAGES, ATTACK_SHARDS),
    log:
        f"{ATTACK_TRAINING}/logs/prepare_images/shard-{{shard}}.log",
    benchmark:
        f"{ATTACK_TRAINING}/benchmarks/prepare_images/shard-{{shard}}.tsv"


use rule detect_faces as detect_attack_faces with:
    input:
        f"{ATTACK_TRAINING}/images/shard-{{shard}}",
    output:
        f"{ATTACK_TRAINING}/faces/shard-{{shard}}.csv",
    log:
        f"{ATTACK_TRAINING}/logs/detect_faces/shard-{{shard}}.log",
    benchmark:
        f"{ATTACK_TRAINING}/benchmarks/detect_faces/shard-{{shard}}.tsv"


use rule crop_faces as crop_attack_faces with:
    input:
        faces=f"{ATTACK_TRAINING}/faces/shard-{{shard}}.csv",
        images=lambda w: shard_version(w.point, w.shard, ATTACK_TRAINING),
    output:
        f"{ATTACK_TRAINING}/crops/{{point}}/shard-{{shard}}.npz",
    log:
        f"{ATTACK_TRAINING}/logs/crop_faces/{{point}}/shard-{{shard}}.log",
    benchmark:
        f"{ATTACK_TRAINING}/benchmarks/crop_faces/{{point}}/shard-{{shard}}.tsv"


use rule embed_faces as embed_attack_faces with:
    input:
        crops=f"{ATTACK_TRAINING}/crops/{{version}}/shard-{{shard}}.npz",
        weights=[f"{RESULTS}/weights/{MANIFEST[model].file}.verified" for model in MODELS],
    output:
        f"{ATTACK_TRAINING}/embeddings/{{version}}/shard-{{shard}}.npz",
    log:
        f"{ATTACK_TRAINING}/logs/embed_faces/{{version}}/shard-{{shard}}.log",
    benchmark:
        f"{ATTACK_TRAINING}/benchmarks/embed_faces/{{version}}/shard-{{shard}}.tsv"


rule fit_adapters:
    input:
        original=expand(f"{ATTACK_TRAINING}/embeddings/original/shard-{{shard}}.npz", shard=ATTACK_SHARDS),
        decoded=expand(f"{ATTACK_TRAINING}/embeddings/{{{{label}}}}/{{{{quality}}}}/shard-{{shard}}.npz",
                       shard=ATTACK_SHARDS),
        faces=expand(f"{ATTACK_TRAINING}/faces/shard-{{shard}}.csv", shard=ATTACK_SHARDS),
    output:
        adapters=f"{ATTACKERS}/adapters/{{label}}/{{quality}}.npz",
        fit=f"{ATTACKERS}/adapters/{{label}}/{{quality}}.csv",
    params:
        models=MODELS,
        min_confidence=min(config["faces"]["thresholds"]),
    log:
        f"{ATTACKERS}/logs/fit_adapters/{{label}}/{{quality}}.log",
    benchmark:
        f"{ATTACKERS}/benchmarks/fit_adapters/{{label}}/{{quality}}.tsv"
    resources:
        **compute_resources(mem_mb=2000, runtime=30),
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/fit_adapters.py"


rule train_restorer:
    input:
        images=expand(f"{ATTACK_TRAINING}/images/shard-{{shard}}", shard=ATTACK_SHARDS),
        faces=expand(f"{ATTACK_TRAINING}/faces/shard-{{shard}}.csv", shard=ATTACK_SHARDS),
        decoded=lambda w: flattened(attack_decoded_folders(w.label)),
    output:
        restorer=f"{ATTACKERS}/restorers/{{label}}.pt",
        measured=f"{ATTACKERS}/restorers/{{label}}.csv",
    params:
        decoded_folders=lambda w: attack_decoded_folders(w.label),
        settings=config["privacy"]["attack_training"],
        min_confidence=min(config["faces"]["thresholds"]),
        gpu=config["gpu"],
    log:
        f"{ATTACKERS}/logs/train_restorer/{{label}}.log",
    benchmark:
        f"{ATTACKERS}/benchmarks/train_restorer/{{label}}.tsv"
    # One thread: beside other jobs, two one-thread restorers train faster than one on two threads.
    threads: 1
    resources:
        **compute_resources(mem_mb=6000, runtime=24 * 60, gpu=GPU_PER_MODEL_JOB),
    conda:
        "../../envs/learned.yaml"
    script:
        "../scripts/train_restorer.py"


rule restore_faces:
    input:
        faces=f"{RESULTS}/faces/shard-{{shard}}.csv",
        images=f"{RESULTS}/decoded/{{label}}/{{quality}}/shard-{{shard}}",
        restorer=f"{ATTACKERS}/restorers/{{label}}.pt",
    output:
        f"{RESULTS}/crops/{{label}}/{{quality}}/restored/shard-{{shard}}.npz",
    params:
        min_confidence=min(config["faces"]["thresholds"]),
        gpu=config["gpu"],
    log:
        f"{RESULTS}/logs/restore_faces/{{label}}/{{quality}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/restore_faces/{{label}}/{{quality}}/shard-{{shard}}.tsv"
    threads: 1
    resources:
        **compute_resources(mem_mb=3000, runtime=60, gpu=GPU_PER_MODEL_JOB),
    conda:
        "../../envs/learned.yaml"
    script:
        "../scripts/restore_faces.py"


rule tabulate_attackers:
    localrule: True
    input:
        restorers=expand(f"{ATTACKERS}/restorers/{{label}}.csv", label=RESTORED_LABELS),
        adapters=[f"{ATTACKERS}/adapters/{point}.csv" for point in ADAPTED_POINTS],
    output:
        restorers=report(f"{RESULTS}/tables/restorers.csv", category="Tables"),
        adapters=report(f"{RESULTS}/tables/adapters.csv", category="Tables"),
    params:
        adapter_csvs={point: f"{ATTACKERS}/adapters/{point}.csv" for point in ADAPTED_POINTS},
    log:
        f"{RESULTS}/logs/tabulate_attackers.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_attackers.tsv"
    conda:
        "../../envs/results.yaml"
    script:
        "../scripts/tabulate_attackers.py"
