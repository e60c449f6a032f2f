# One training per head; the heads train side by side, each on its share of the cores.

rule train:
    input:
        PROCESSED,
        "data/stats.json",
        code=stage_code("train"),
    output:
        checkpoint="results/heads/{head}/checkpoint.pt",
        tensorboard=directory("results/heads/{head}/tb"),
        curve="results/heads/{head}/train_curve.csv",
        knn_curve="results/heads/{head}/knn_curve.csv",
    params:
        opt=PARAMS_OPT,
        values=stage_params("train"),
    threads: train_threads()
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    log:
        "logs/train/{head}.log",
    benchmark:
        "logs/train/{head}.benchmark.tsv"
    shell:
        "python -m vjepa train --head {wildcards.head}{params.opt} --threads {threads} > {log} 2>&1"
