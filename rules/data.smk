# Data: the source named in params (digits, tiny-imagenet, imagefolder) → uint8 arrays → channel stats.

rule prepare:
    input:
        code=stage_code("prepare"),
    output:
        PROCESSED,
    params:
        opt=PARAMS_OPT,
        values=stage_params("prepare"),
    conda:
        CONDA_ENV
    log:
        "logs/prepare.log",
    benchmark:
        "logs/prepare.benchmark.tsv"
    shell:
        "python -m vjepa prepare{params.opt} > {log} 2>&1"


rule stats:
    input:
        PROCESSED,
        code=stage_code("stats"),
    output:
        "data/stats.json",
    params:
        opt=PARAMS_OPT,
        values=stage_params("stats"),
    conda:
        CONDA_ENV
    log:
        "logs/stats.log",
    benchmark:
        "logs/stats.benchmark.tsv"
    shell:
        "python -m vjepa stats{params.opt} > {log} 2>&1"
