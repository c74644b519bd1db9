# One rule per configured codec entry (its bitstream extension and threads differ): each job
# encodes one image at one quality into a bitstream file and decodes that file back.
# De-identification codecs also read the image's face boxes; k-Same reads the gallery of original
# face crops.

for entry in config["codecs"]:

    rule:
        name:
            f"code_{entry['label'].replace('-', '_').replace('.', '_')}"
        input:
            image=lambda w: image_version("original", w.image),
            **codec_face_inputs(entry),
        output:
            bitstream=f"{RESULTS}/bitstreams/{entry['label']}/{{quality}}/{{image}}.{CODEC_EXTENSIONS[entry['label']]}",
            decoded=f"{RESULTS}/decoded/{entry['label']}/{{quality}}/{{image}}.png",
        params:
            codec=entry["codec"],
            options=entry.get("options", {}),
        threads: entry["threads"]
        resources:
            mem_mb=2000,
            runtime=60,
        conda:
            "../../envs/codecs.yaml"
        log:
            f"{RESULTS}/logs/code/{entry['label']}/{{quality}}/{{image}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/code/{entry['label']}/{{quality}}/{{image}}.tsv"
        script:
            "../../scripts/code_image.py"
