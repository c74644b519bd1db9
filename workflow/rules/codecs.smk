# One rule per configured codec entry, code_<label> (threads, conda env and GPU use differ), each running
# icm_privacy.stages.codecs.code: a job codes one shard at one quality, building the codec once (a
# learned codec loads its model once), into a folder of bitstream files (plus coding.csv: bytes, bpp,
# estimated bpp, seconds) and a folder of the PNGs decoded from those files. De-identification codecs
# also read the shard's face boxes; k-Same reads the gallery of original face crops; an import its files.
# An entry that a learning attacker attacks (attackers.smk) also codes the attacker's training images, in
# the attacker training folder, by the same rule (code_attack_<label>).

for entry in config["codecs"]:
    codec = CODEC_BY_LABEL[entry["label"]]
    for prefix, root in coded_folders(entry["label"]).items():

        rule:
            name:
                f"code_{prefix}{entry['label'].replace('-', '_').replace('.', '_')}"
            input:
                images=f"{root}/images/shard-{{shard}}",
                **codec_inputs(entry, root),
            output:
                bitstreams=directory(f"{root}/bitstreams/{entry['label']}/{{quality}}/shard-{{shard}}"),
                decoded=decoded_output(f"{root}/decoded/{entry['label']}/{{quality}}/shard-{{shard}}"),
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
                f"{root}/logs/code/{entry['label']}/{{quality}}/shard-{{shard}}.log",
            benchmark:
                f"{root}/benchmarks/code/{entry['label']}/{{quality}}/shard-{{shard}}.tsv"
            script:
                "../scripts/code.py"
