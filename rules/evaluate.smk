# Frozen-encoder features, kNN and head metrics per run (head and seed); the reference floors; Table I.

rule embed:
    input:
        PROCESSED,
        "data/stats.json",
        "results/heads/{head}/seed{seed}/checkpoint.pt",
        code=stage_code("embed"),
    output:
        "results/heads/{head}/seed{seed}/embeddings.npz",
    params:
        opt=PARAMS_OPT,
        values=stage_params("embed"),
    conda:
        CONDA_ENV
    log:
        "logs/embed/{head}-seed{seed}.log",
    benchmark:
        "logs/embed/{head}-seed{seed}.benchmark.tsv"
    shell:
        "python -m vjepa embed --head {wildcards.head} --seed {wildcards.seed}{params.opt} --threads {threads} > {log} 2>&1"


rule evaluate:
    input:
        "data/processed/val.npz",
        "data/stats.json",
        "results/heads/{head}/seed{seed}/checkpoint.pt",
        "results/heads/{head}/seed{seed}/embeddings.npz",
        code=stage_code("evaluate"),
    output:
        "results/heads/{head}/seed{seed}/metrics.json",
    params:
        opt=PARAMS_OPT,
        values=stage_params("evaluate"),
    conda:
        CONDA_ENV
    log:
        "logs/evaluate/{head}-seed{seed}.log",
    benchmark:
        "logs/evaluate/{head}-seed{seed}.benchmark.tsv"
    shell:
        "python -m vjepa evaluate --head {wildcards.head} --seed {wildcards.seed}{params.opt} --threads {threads} > {log} 2>&1"


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
        runs("metrics.json"),
        "results/reference/metrics.json",
        code=stage_code("summarize"),
    output:
        summary="results/metrics.json",
        table="report/generated/table1.tex",
        numbers="report/generated/numbers.tex",
        uncertainty="report/generated/uncertainty.tex",
        comparison="report/generated/comparison.tex",
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
