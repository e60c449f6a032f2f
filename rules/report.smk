# Figures (one rule each, from the pipeline's own files) and the LaTeX report.

rule samples:
    input:
        "data/processed/val.npz",
        "data/stats.json",
        f"results/heads/{{head}}/seed{SEEDS[0]}/checkpoint.pt",
        code=stage_code("samples"),
    output:
        f"results/heads/{{head}}/seed{SEEDS[0]}/samples.npz",
    params:
        opt=PARAMS_OPT,
        values=stage_params("samples"),
    threads: train_threads()
    conda:
        CONDA_ENV
    log:
        "logs/samples/{head}.log",
    benchmark:
        "logs/samples/{head}.benchmark.tsv"
    shell:
        f"python -m vjepa samples --head {{wildcards.head}} --seed {SEEDS[0]}{{params.opt}} --threads {{threads}} "
        "> {log} 2>&1"


for _name in FIGURE_NAMES:

    rule:
        name:
            f"figure_{_name}"
        input:
            FIGURE_SPECS[_name][0],
            code=stage_code(f"figure_{_name}"),
        output:
            pdf=f"report/figures/{_name}.pdf",
            png=f"report/figures/{_name}.png",
        params:
            figure=_name,  # bound now: the shell command runs after the loop has moved on
            opt=PARAMS_OPT,
            values=stage_params(f"figure_{_name}"),
        conda:
            CONDA_ENV
        log:
            f"logs/figures/{_name}.log",
        benchmark:
            f"logs/figures/{_name}.benchmark.tsv"
        shell:
            "python -m vjepa figure {params.figure}{params.opt} > {log} 2>&1"


rule report:
    input:
        "report/vjepa.tex",
        "report/generated/table1.tex",
        "report/generated/numbers.tex",
        "report/generated/uncertainty.tex",
        "report/generated/comparison.tex",
        expand("report/figures/{name}.pdf", name=FIGURE_NAMES),
        PROCESSED,
        "data/stats.json",
        runs("checkpoint.pt"),
        "benchmarks/results",
        code=stage_code("report"),
    output:
        pdf="report/vjepa.pdf",
        generated=expand("report/generated/{name}.tex", name=["setup", "figures", "provenance", "trunk"]),
    params:
        opt=PARAMS_OPT,
        values=stage_params("report"),
    conda:
        CONDA_ENV
    log:
        "logs/report.log",
    benchmark:
        "logs/report.benchmark.tsv"
    shell:
        "python -m vjepa report{params.opt} > {log} 2>&1"
