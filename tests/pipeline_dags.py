"""Dump the Snakemake or DVC DAG of a project folder as JSON (run as a script, one tool per process).

    python tests/pipeline_dags.py snakemake ROOT
    python tests/pipeline_dags.py dvc ROOT

Snakemake: every job of `--forceall` with rule, wildcards, shell command, input, output and
params. DVC: every stage of dvc.yaml (matrix expanded) with command, deps, params, outs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def snakemake_jobs(root: Path) -> list[dict]:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

    jobs = []
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=2), snakefile=root / "Snakefile", workdir=root
        )
        workflow_api.dag(DAGSettings(forceall=True))
        wf = workflow_api._workflow  # the API prints DAGs but does not return them
        wf._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        wf._build_dag()
        for job in wf.dag.jobs:
            jobs.append(
                {
                    "rule": job.rule.name,
                    "wildcards": dict(job.wildcards_dict),
                    "shell": job.shellcmd,
                    "input": [str(f) for f in job.input],
                    "output": [str(f) for f in job.output],
                    "params": dict(job.params.items()),
                }
            )
    return jobs


def dvc_stages(root: Path) -> list[dict]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    stages = []
    for st in Repo(str(root)).index.stages:
        stages.append(
            {
                "name": st.name,
                "cmd": st.cmd,
                "deps": [d.def_path for d in st.deps if not isinstance(d, ParamsDependency)],
                "params": [k for d in st.deps if isinstance(d, ParamsDependency) for k in d.params],
                "outs": [o.def_path for o in st.outs],
                "uncached": [o.def_path for o in st.outs if not o.use_cache],
            }
        )
    return stages


if __name__ == "__main__":
    tool, root = sys.argv[1], Path(sys.argv[2]).resolve()
    dump = snakemake_jobs if tool == "snakemake" else dvc_stages
    print(json.dumps(dump(root), default=str))
