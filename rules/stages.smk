# One rule per stage of src/vjepa/pipeline/stages.py (and per figure): the table says what each reads,
# writes and needs (job_resources: the GPUs, nodes and tasks of a job); vjepa.pipeline.codedeps says which
# package files it runs. dvc.yaml is rendered from the same table (`python -m vjepa dvc-yaml`).

for _st in stages(config):

    rule:
        name:
            _st.name
        input:
            inputs(_st, config, _PATHS, listed=True),
            code=stage_code(_st),
        output:
            _outputs(_st),
        params:
            # bound now: a rule's shell runs after the loop has moved on to the next stage
            command=stage_command(_st),
            threads=threads_option(_st),
            opt=PARAMS_OPT,
            values=stage_params(_st),
        threads: _THREADS[_st.threads]
        resources:
            **job_resources(_st, config["launch"]),
        conda:
            CONDA_ENV
        log:
            f"logs/{_st.log or _st.name}.log",
        benchmark:
            f"logs/{_st.log or _st.name}.benchmark.tsv"
        shell:
            "{params.command}{params.opt}{params.threads} > {log} 2>&1"
