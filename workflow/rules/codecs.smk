# One rule per configured codec entry, code_<label> (threads, conda env and GPU use differ), each running
# icm_privacy.stages.codecs.code: a job codes one shard at one quality, building the codec once (a
# learned codec loads its model once), into a folder of bitstream files (plus coding.csv: bytes, bpp,
# estimated bpp, seconds) and a folder of the PNGs decoded from those files. De-identification codecs
# also read the shard's face boxes; k-Same reads the gallery of original face crops; an import its files.

for entry in config["codecs"]:
    codec = CODEC_BY_LABEL[entry["label"]]

    rule:
        name:
            f"code_{entry['label'].replace('-', '_').replace('.', '_')}"
        input:
            images=f"{RESULTS}/images/shard-{{shard}}",
            **codec_inputs(entry),
        output:
            bitstreams=directory(f"{RESULTS}/bitstreams/{entry['label']}/{{quality}}/shard-{{shard}}"),
            decoded=decoded_output(f"{RESULTS}/decoded/{entry['label']}/{{quality}}/shard-{{shard}}"),
        params:
            codec=entry["codec"],
            label=entry["label"],
            quality=point_quality(entry["label"]),
            options=entry.get("options", {}),
            source=entry_source(entry),  # a plug-in's version or file hash, icm weights: new ones re-run these jobs
        threads: entry["threads"]
        resources:
            **compute_resources(mem_mb=6000 if codec.uses_gpu else 2000, runtime=240,
                                gpu=GPU_PER_MODEL_JOB if codec.uses_gpu else 0),
        conda:
            f"../../envs/{codec.conda_env}.yaml"
        log:
            f"{RESULTS}/logs/code/{entry['label']}/{{quality}}/shard-{{shard}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/code/{entry['label']}/{{quality}}/shard-{{shard}}.tsv"
        script:
            "../scripts/code.py"
