# The masking sweep: one training per (target area, number of blocks) of `ablation` in params.
# `snakemake ablation` runs it alone; the report includes its figure.

rule ablate:
    input:
        PROCESSED,
        "data/stats.json",
        code=stage_code("ablate"),
    output:
        run=directory("results/ablation/area{area}_blocks{blocks}"),
        metrics="results/ablation/area{area}_blocks{blocks}.json",
    params:
        opt=PARAMS_OPT,
        values=stage_params("ablate"),
    threads: train_threads()
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    log:
        "logs/ablation/area{area}_blocks{blocks}.log",
    benchmark:
        "logs/ablation/area{area}_blocks{blocks}.benchmark.tsv"
    shell:
        "python -m vjepa ablate --area {wildcards.area} --blocks {wildcards.blocks}{params.opt} --threads {threads} "
        "> {log} 2>&1"


rule ablation:
    input:
        ABLATION_RESULTS,
        "report/figures/masking_ablation.pdf",
