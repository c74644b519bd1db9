"""Rule provision_weights (workflow/rules/faces.smk): icm_privacy.stages.faces.provision_weights."""
from icm_privacy.stages import logged
from icm_privacy.stages.faces import provision_weights

with logged(snakemake.log[0]):
    provision_weights(snakemake.params.model, snakemake.params.deepface_home, snakemake.params.cache,
                      snakemake.output[0])
