# Faces: detected once per shard on the originals; the same boxes are cropped from every version of
# the shard's images; each (codec point, shard) job embeds its crops with every face model, building
# each model once.


rule detect_faces:
    input:
        lambda w: shard_folder(w.shard),
    output:
        f"{RESULTS}/faces/shard-{{shard}}.csv",
    params:
        image_paths=lambda w: {i: image_version("original", i) for i in shard_images(w.shard)},
        detector=config["faces"]["detector"],
    log:
        f"{RESULTS}/logs/detect_faces/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect_faces/shard-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
        gpu=GPU_PER_MODEL_JOB,
    conda:
        "../../envs/faces.yaml"
    script:
        "../../scripts/detect_faces.py"


rule crop_faces:
    input:
        faces=f"{RESULTS}/faces/shard-{{shard}}.csv",
        images=lambda w: [image_version(w.point, i) for i in shard_images(w.shard)],
    output:
        f"{RESULTS}/crops/{{point}}/shard-{{shard}}.npz",
    params:
        image_paths=lambda w: {i: image_version(w.point, i) for i in shard_images(w.shard)},
        min_confidence=min(config["faces"]["thresholds"]),
    log:
        f"{RESULTS}/logs/crop_faces/{{point}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/crop_faces/{{point}}/shard-{{shard}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/codecs.yaml"
    script:
        "../../scripts/crop_faces.py"


rule provision_weights:
    # Downloads: run where the network is, not on compute nodes. The output is a per-run marker, not
    # the shared weights file, so concurrent runs never lock each other out of $DEEPFACE_HOME.
    localrule: True
    output:
        f"{RESULTS}/weights/{{weights_file}}.verified",
    params:
        model=lambda w: next(m for m, e in MANIFEST.items() if e.file == w.weights_file),
        deepface_home=DEEPFACE_HOME,
        cache=config["weights"]["cache"],
    log:
        f"{RESULTS}/logs/provision_weights/{{weights_file}}.log",
    conda:
        "../../envs/faces.yaml"
    script:
        "../../scripts/provision_weights.py"


rule embed_faces:
    input:
        crops=f"{RESULTS}/crops/{{point}}/shard-{{shard}}.npz",
        weights=[f"{RESULTS}/weights/{MANIFEST[model].file}.verified" for model in MODELS],
    output:
        f"{RESULTS}/embeddings/{{point}}/shard-{{shard}}.npz",
    params:
        models=MODELS,
        batch_size=config["faces"]["batch_size"],
    log:
        f"{RESULTS}/logs/embed_faces/{{point}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed_faces/{{point}}/shard-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
        gpu=GPU_PER_MODEL_JOB,
    conda:
        "../../envs/faces.yaml"
    script:
        "../../scripts/embed_faces.py"
