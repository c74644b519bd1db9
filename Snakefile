# How much face identity survives image codecs: original images -> bitstreams -> decoded images
# -> face crops -> embeddings -> tables and curves. Rules only wire files; the logic is in
# src/icm_privacy, and each rule's script is a few lines that call it.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/codecs.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/privacy.smk"
include: "workflow/rules/attackers.smk"
include: "workflow/rules/detection.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/training.smk"


rule all:
    input:
        final_outputs,
