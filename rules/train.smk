# One training per head and seed; the runs train side by side, each on its share of the cores.

rule train:
    input:
        PROCESSED,
        "data/stats.json",
        code=stage_code("train"),
    output:
        checkpoint="results/heads/{head}/seed{seed}/checkpoint.pt",
        tensorboard=directory("results/heads/{head}/seed{seed}/tb"),
        curve="results/heads/{head}/seed{seed}/train_curve.csv",
        knn_curve="results/heads/{head}/seed{seed}/knn_curve.csv",
    params:
        opt=PARAMS_OPT,
        values=stage_params("train"),
    threads: train_threads()
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    log:
        "logs/train/{head}-seed{seed}.log",
    benchmark:
        "logs/train/{head}-seed{seed}.benchmark.tsv"
    shell:
        "python -m vjepa train --head {wildcards.head} --seed {wildcards.seed}{params.opt} --threads {threads} > {log} 2>&1"
