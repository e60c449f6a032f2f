# The masking sweep's own target: `snakemake --cores 8 ablation` (one `ablate` job per point of
# `ablation` in params, then its figure).

rule ablation:
    input:
        ABLATION_RESULTS,
        "report/figures/masking_ablation.pdf",
