# Frozen-encoder features, kNN and head metrics per head; the reference floors; Table I.

rule embed:
    input:
        PROCESSED,
        "data/stats.json",
        "results/heads/{head}/checkpoint.pt",
        code=stage_code("embed"),
    output:
        "results/heads/{head}/embeddings.npz",
    params:
        opt=PARAMS_OPT,
        values=stage_params("embed"),
    conda:
        CONDA_ENV
    log:
        "logs/embed/{head}.log",
    benchmark:
        "logs/embed/{head}.benchmark.tsv"
    shell:
        "python -m vjepa embed --head {wildcards.head}{params.opt} --threads {threads} > {log} 2>&1"


rule evaluate:
    input:
        "data/processed/val.npz",
        "data/stats.json",
        "results/heads/{head}/checkpoint.pt",
        "results/heads/{head}/embeddings.npz",
        code=stage_code("evaluate"),
    output:
        "results/heads/{head}/metrics.json",
    params:
        opt=PARAMS_OPT,
        values=stage_params("evaluate"),
    conda:
        CONDA_ENV
    log:
        "logs/evaluate/{head}.log",
    benchmark:
        "logs/evaluate/{head}.benchmark.tsv"
    shell:
        "python -m vjepa evaluate --head {wildcards.head}{params.opt} --threads {threads} > {log} 2>&1"


rule reference:
    input:
        PROCESSED,
        "data/stats.json",
        code=stage_code("reference"),
    output:
        "results/reference/metrics.json",
    params:
        opt=PARAMS_OPT,
        values=stage_params("reference"),
    conda:
        CONDA_ENV
    log:
        "logs/reference.log",
    benchmark:
        "logs/reference.benchmark.tsv"
    shell:
        "python -m vjepa reference{params.opt} --threads {threads} > {log} 2>&1"


rule summarize:
    input:
        expand("results/heads/{head}/metrics.json", head=HEADS),
        "results/reference/metrics.json",
        code=stage_code("summarize"),
    output:
        summary="results/metrics.json",
        table="report/generated/table1.tex",
        numbers="report/generated/numbers.tex",
        uncertainty="report/generated/uncertainty.tex",
    params:
        opt=PARAMS_OPT,
        values=stage_params("summarize"),
    conda:
        CONDA_ENV
    log:
        "logs/summarize.log",
    benchmark:
        "logs/summarize.benchmark.tsv"
    shell:
        "python -m vjepa summarize{params.opt} > {log} 2>&1"
