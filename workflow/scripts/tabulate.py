"""Rule tabulate (workflow/rules/results.smk): icm_privacy.stages.results.tabulate."""
from icm_privacy.stages import logged
from icm_privacy.stages.results import tabulate

with logged(snakemake.log[0]):
    tabulate(snakemake.input.shards, snakemake.input.faces, snakemake.params.coded_folders,
             snakemake.params.embedding_files, snakemake.params.models, snakemake.params.views,
             snakemake.output, snakemake.params.unread, snakemake.params.adapter_files)
