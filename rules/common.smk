# Shared by every rule: the params file, its validation, the per-stage params and code deps.
#
# params.yaml is both Snakemake's configfile and DVC's params file. `--configfile
# profiles/X.yaml` switches profile: a profile is a complete params file, and the
# commands read that same file (--params), so both see identical settings.

import os
import re
import sys
from pathlib import Path

from vjepa.core.config import ConfigError, load_params

# Rules run `python -m vjepa` from this checkout's src/, with the Python running Snakemake (the
# project's venv) unless --use-conda gives each rule envs/vjepa.yaml.
CONDA_ENV = "../envs/vjepa.yaml"
_use_conda = "conda" in {str(m).lower() for m in workflow.deployment_settings.deployment_method}
_SRC = Path(workflow.basedir) / "src"
_VENV_BIN = "" if _use_conda else f"export PATH={Path(sys.executable).parent}:$PATH; "
shell.prefix(f"{_VENV_BIN}export PYTHONPATH={_SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


from snakemake.exceptions import WorkflowError


def _params_file():
    if workflow.config_settings.config:
        raise WorkflowError("vjepa: --config is not supported; edit params.yaml (or a copy of it) and pass "
                            "that file with --configfile, so that every setting lives in one file")
    given = workflow.config_settings.configfiles
    if not given:
        return "params.yaml"
    path = Path(given[-1])
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


PARAMS_FILE = _params_file()
try:
    # JSON schema (rules/schema.yaml) + the cross-key checks; the commands read the same file.
    _params = load_params(PARAMS_FILE)
except ConfigError as e:
    raise WorkflowError(f"vjepa: {e}") from None
config.clear()
config.update(_params)  # profiles are complete files: nothing of params.yaml leaks into them

HEADS = list(config["heads"])
SEEDS = list(config["seeds"])
PARAMS_OPT = "" if PARAMS_FILE == "params.yaml" else f" --params {PARAMS_FILE}"
OUTPUT_ROOTS = ["data", "results", "report"]

from vjepa.core.config import ablation_grid
from vjepa.pipeline.stages import ablation_results

ABLATION_AREAS, ABLATION_BLOCKS = ([str(v) for v in axis] for axis in ablation_grid(config))
ABLATION_RESULTS = ablation_results(config)

wildcard_constraints:
    head="|".join(HEADS),
    seed="|".join(map(str, SEEDS)),
    area="|".join(re.escape(a) for a in ABLATION_AREAS),
    blocks="|".join(ABLATION_BLOCKS),


# Each stage's inputs, outputs, params and resources: the table in src/vjepa/pipeline/stages.py (dvc.yaml is
# rendered from it too); the package files it runs: vjepa.pipeline.codedeps, from the imports.
from vjepa.pipeline.codedeps import closure
from vjepa.pipeline.stages import head_of, inputs, job_resources, stages


def _lookup(dotted):
    node = config
    for key in dotted.split("."):
        node = node[key]
    return node


def stage_params(st):
    """Snakemake `params:` for a stage: {dotted key: value}, compared by Snakemake between runs."""
    def values(wildcards):
        head = head_of(st, config, wildcards.get("head"))
        return {k: _lookup(k) for k in (key.format(head=head) for key in st.params)}
    return values


def stage_code(st):
    return lambda wildcards: closure(st.vjepa_command, head=head_of(st, config, wildcards.get("head")),
                                     figure=st.figure)


def train_threads():
    """Split the cores between the heads' trainings, which run side by side."""
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores: summaries and reports of the DAG
        return 1
    return max(1, int(cores) // max(1, len(HEADS)))


# A stage's templates ({head}, {seed}, ...) as Snakemake wildcards in paths and in shell commands.
_PATHS = {"head": "{head}", "seed": "{seed}", "area": "{area}", "blocks": "{blocks}", "first_seed": SEEDS[0]}
_THREADS = {"train": train_threads(), "one": 1, None: 1}


def _outputs(st):
    return [directory(o.path.format(**_PATHS)) if o.directory else o.path.format(**_PATHS) for o in st.outs]


def stage_command(st):
    """A job's `python -m vjepa ...` (after VJEPA_GPU_SLOTS for a GPU stage on several GPUs)."""
    def command(wildcards):
        values = {k: wildcards.get(k, "") for k in ("head", "seed", "area", "blocks")}
        return (GPU_SLOTS if st.gpu else "") + "python -m vjepa " + st.command.format(**values, first_seed=SEEDS[0])
    return command


def threads_option(st):
    """` --threads N` for a stage that sets its threads (N: the job's share of the cores)."""
    return lambda wildcards, threads: f" --threads {threads}" if st.threads else ""


def _gpus():
    """The GPUs given to this run (--resources gpu=N, e.g. by profiles/gpu): with more than one,
    each GPU job claims its own (vjepa.pipeline.gpus)."""
    given = workflow.resource_settings.resources.get("gpu")
    value = getattr(given, "value", given)
    return int(value) if isinstance(value, (int, float)) else 0


GPU_SLOTS = f"export VJEPA_GPU_SLOTS={_gpus()}; " if _gpus() > 1 else ""


def record_in_dvc():
    """After a successful run on params.yaml, record the outputs in dvc.lock so that `dvc status`
    agrees with Snakemake. `dvc commit` re-creates cached outputs from its cache (new files, new
    times), so every output's modification time is put back afterwards: Snakemake then still sees
    them as newer than their inputs."""
    import shutil
    import subprocess

    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if PARAMS_FILE != "params.yaml" or not Path(".dvc").is_dir() or dvc is None:
        return
    times = {p: p.stat().st_mtime_ns for root in OUTPUT_ROOTS if Path(root).exists()
             for p in [Path(root), *Path(root).rglob("*")]}
    done = subprocess.run([dvc, "commit", "--force", "--quiet"], capture_output=True, text=True)
    for path, mtime in times.items():
        if path.exists() and path.stat().st_mtime_ns != mtime:
            os.utime(path, ns=(path.stat().st_atime_ns, mtime))
    if done.returncode != 0:
        print(f"vjepa: outputs not recorded in dvc.lock ({done.stderr.strip()}); "
              "run `dvc commit --force` once every stage's outputs exist", file=sys.stderr)
