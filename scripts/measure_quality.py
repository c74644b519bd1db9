"""Snakemake script: PSNR (RGB, Y', face boxes) and MS-SSIM of one shard's decoded images at one codec point."""
from icm_privacy.stages import logged, measure_quality

with logged(snakemake.log[0]):
    measure_quality(snakemake.input.images, snakemake.input.decoded, snakemake.input.faces,
                    snakemake.params.min_confidence, snakemake.output[0])
