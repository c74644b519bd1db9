# Faces: detected once per shard on the originals; the same boxes are cropped from every version of
# the shard's images (and, for downscale points, at the reduced resolution for the cross-resolution
# attacker); each (version, shard) job embeds its crops with every face model, building each once.


rule detect_faces:
    input:
        f"{RESULTS}/images/shard-{{shard}}",
    output:
        f"{RESULTS}/faces/shard-{{shard}}.csv",
    params:
        detector=config["faces"]["detector"],
        deepface_home=DEEPFACE_HOME,
    log:
        f"{RESULTS}/logs/detect_faces/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect_faces/shard-{{shard}}.tsv"
    threads: 2
    resources:
        **compute_resources(mem_mb=6000, runtime=240, gpu=GPU_PER_MODEL_JOB),
    conda:
        "../../envs/faces.yaml"
    script:
        "../scripts/detect_faces.py"


rule crop_faces:
    input:
        faces=f"{RESULTS}/faces/shard-{{shard}}.csv",
        images=lambda w: shard_version(w.point, w.shard),
    output:
        f"{RESULTS}/crops/{{point}}/shard-{{shard}}.npz",
    params:
        min_confidence=min(config["faces"]["thresholds"]),
    log:
        f"{RESULTS}/logs/crop_faces/{{point}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/crop_faces/{{point}}/shard-{{shard}}.tsv"
    resources:
        **compute_resources(mem_mb=2000, runtime=30),
    conda:
        "../../envs/codecs.yaml"
    script:
        "../scripts/crop_faces.py"


rule crop_faces_reduced:
    input:
        faces=f"{RESULTS}/faces/shard-{{shard}}.csv",
        images=f"{RESULTS}/images/shard-{{shard}}",
        bitstreams=f"{RESULTS}/bitstreams/{{label}}/{{quality}}/shard-{{shard}}",
    output:
        decoded=f"{RESULTS}/crops/{{label}}/{{quality}}/reduced/shard-{{shard}}.npz",
        original=f"{RESULTS}/crops/{{label}}/{{quality}}/reduced-original/shard-{{shard}}.npz",
    params:
        options=lambda w: REDUCED[f"{w.label}/{w.quality}"].options,
        factor=lambda w: REDUCED[f"{w.label}/{w.quality}"].quality,
        min_confidence=min(config["faces"]["thresholds"]),
    log:
        f"{RESULTS}/logs/crop_faces_reduced/{{label}}/{{quality}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/crop_faces_reduced/{{label}}/{{quality}}/shard-{{shard}}.tsv"
    resources:
        **compute_resources(mem_mb=2000, runtime=30),
    conda:
        "../../envs/codecs.yaml"
    script:
        "../scripts/crop_faces_reduced.py"


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
    benchmark:
        f"{RESULTS}/benchmarks/provision_weights/{{weights_file}}.tsv"
    conda:
        "../../envs/faces.yaml"
    script:
        "../scripts/provision_weights.py"


rule embed_faces:
    input:
        crops=f"{RESULTS}/crops/{{version}}/shard-{{shard}}.npz",
        weights=[f"{RESULTS}/weights/{MANIFEST[model].file}.verified" for model in MODELS],
    output:
        f"{RESULTS}/embeddings/{{version}}/shard-{{shard}}.npz",
    params:
        models=MODELS,
        batch_size=config["faces"]["batch_size"],
        deepface_home=DEEPFACE_HOME,
    log:
        f"{RESULTS}/logs/embed_faces/{{version}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed_faces/{{version}}/shard-{{shard}}.tsv"
    threads: 2
    resources:
        **compute_resources(mem_mb=6000, runtime=240, gpu=GPU_PER_MODEL_JOB),
    conda:
        "../../envs/faces.yaml"
    script:
        "../scripts/embed_faces.py"
