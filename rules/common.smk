# Shared by every rule: the params file, its validation, the per-stage params and code deps.
#
# params.yaml is both Snakemake's configfile and DVC's params file. `--configfile
# profiles/X.yaml` switches profile: a profile is a complete params file, and the
# commands read that same file (--params), so both see identical settings.

import os
import re
import sys
from pathlib import Path

from vjepa.config import ConfigError, load_params

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
# A training run (a head and a seed) lives in results/heads/{head}/seed{seed}/ (vjepa.io.run_dir);
# the figures' samples come from the first seed's run.


def runs(name):
    """File `name` of every run: every head, every seed."""
    return expand(f"results/heads/{{head}}/seed{{seed}}/{name}", head=HEADS, seed=SEEDS)

PARAMS_OPT = "" if PARAMS_FILE == "params.yaml" else f" --params {PARAMS_FILE}"
PROCESSED = ["data/processed/train.npz", "data/processed/val.npz"]
OUTPUT_ROOTS = ["data", "results", "report"]

from vjepa.config import ablation_grid, ablation_point_name, ablation_points

ABLATION_AREAS, ABLATION_BLOCKS = ([str(v) for v in axis] for axis in ablation_grid(config))
ABLATION_RESULTS = [f"results/ablation/{ablation_point_name(a, b)}.json" for a, b in ablation_points(config)]

wildcard_constraints:
    head="|".join(HEADS),
    seed="|".join(map(str, SEEDS)),
    area="|".join(re.escape(a) for a in ABLATION_AREAS),
    blocks="|".join(ABLATION_BLOCKS),


# What each stage reads: the same dotted keys as its `params:` in dvc.yaml (tests/test_pipeline.py
# keeps the two in step), so changing one head's section reruns that head's chain alone.
STAGE_PARAMS = {
    "prepare": ["data.source", "data.path", "data.image_size", "data.num_classes", "data.val_fraction",
                "data.split_seed"],
    "stats": ["seed", "data.stats_subsample"],
    "train": ["data.image_size", "data.num_classes", "model", "mask", "augment", "trunk", "train", "eval.knn_k",
              "eval.knn_temperature", "eval.batch_size", "head.{head}"],
    "embed": ["eval.batch_size"],
    "evaluate": ["seed", "data.num_classes", "mask", "eval", "head.{head}"],
    "reference": ["seed", "data.image_size", "data.num_classes", "model", "train.device", "eval.knn_k",
                  "eval.knn_temperature", "eval.batch_size", "eval.probe_steps", "eval.probe_weight_decay"],
    "summarize": ["heads", "seeds", "data.source", "head", "train.batch_size"],
    "samples": ["seed", "seeds", "figures.num_samples", "figures.batch_images"],
    "report": ["seed", "seeds", "heads", "data", "model", "mask", "augment", "trunk", "train", "eval", "head"],
    "ablate": ["seeds", "data.image_size", "data.num_classes", "model", "mask", "augment", "trunk", "train",
               "eval.knn_k",
               "eval.knn_temperature", "eval.batch_size", "eval.probe_steps", "eval.probe_weight_decay", "ablation",
               f"head.{config['ablation']['head']}"],
}

# The package modules each stage runs (neither tool follows Python imports).
_CORE = ["src/vjepa/cli.py", "src/vjepa/config.py", "src/vjepa/schema.yaml"]
_HEAD = ["src/vjepa/heads/base.py", "src/vjepa/heads/adaln.py", "src/vjepa/heads/{head}.py"]
STAGE_CODE = {
    "prepare": ["src/vjepa/data.py"],
    "stats": ["src/vjepa/data.py"],
    "train": ["src/vjepa/train.py", "src/vjepa/batch.py", "src/vjepa/jepa.py", "src/vjepa/trunk.py",
              "src/vjepa/vit.py", "src/vjepa/masks.py", "src/vjepa/augment.py", "src/vjepa/regularizers.py"] + _HEAD,
    "embed": ["src/vjepa/embed.py", "src/vjepa/checkpoint.py", "src/vjepa/vit.py"],
    "evaluate": ["src/vjepa/evaluate.py", "src/vjepa/knn.py", "src/vjepa/probe.py", "src/vjepa/head_metrics.py",
                 "src/vjepa/uncertainty.py"] + _HEAD,
    "reference": ["src/vjepa/reference.py", "src/vjepa/knn.py", "src/vjepa/probe.py", "src/vjepa/evaluate.py",
                  "src/vjepa/vit.py", "src/vjepa/embed.py"],
    "summarize": ["src/vjepa/summarize.py"],
    "samples": ["src/vjepa/samples.py", "src/vjepa/head_metrics.py", "src/vjepa/checkpoint.py"] + _HEAD,
    "report": ["src/vjepa/report.py", "src/vjepa/trunk.py", "src/vjepa/figures/__init__.py"],
}
STAGE_CODE["ablate"] = (["src/vjepa/ablation.py", "src/vjepa/embed.py", "src/vjepa/checkpoint.py", "src/vjepa/knn.py",
                         "src/vjepa/probe.py", "src/vjepa/evaluate.py"]
                        + [p.replace("{head}", config["ablation"]["head"]) for p in STAGE_CODE["train"]])


def _lookup(dotted):
    node = config
    for key in dotted.split("."):
        node = node[key]
    return node


def stage_params(stage):
    """Snakemake `params:` for a stage: {dotted key: value}, compared by Snakemake between runs."""
    def values(wildcards):
        keys = [k.format(head=wildcards.get("head", "")) for k in STAGE_PARAMS[stage]]
        return {k: _lookup(k) for k in keys}
    return values


def stage_code(stage):
    return lambda wildcards: [p.format(head=wildcards.get("head", "")) for p in _CORE + STAGE_CODE[stage]]


def train_threads():
    """Split the cores between the heads' trainings, which run side by side."""
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores: summaries and reports of the DAG
        return 1
    return max(1, int(cores) // max(1, len(HEADS)))


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


# The report's figures (src/vjepa/figures/): the MDN ones exist only when `mdn` is a head.
from vjepa.figures import FIGURES, figure_names

FIGURE_NAMES = figure_names(HEADS)
_FIG_CODE = ["src/vjepa/figures/__init__.py", "src/vjepa/figures/common.py"]
MDN_SAMPLES = f"results/heads/mdn/seed{SEEDS[0]}/samples.npz"
FIGURE_SPECS = {  # name -> (inputs, params it reads, extra modules)
    "losses": (runs("tb"), ["heads", "seeds", "figures.dpi"], []),
    "knn": (runs("knn_curve.csv"), ["heads", "seeds", "figures.dpi"], []),
    "masks": (["data/processed/val.npz"], ["seed", "data.image_size", "model.patch_size", "mask",
                                           "figures.mask_images", "figures.dpi"], []),
    "heads_grid": (expand(f"results/heads/{{head}}/seed{SEEDS[0]}/samples.npz", head=HEADS),
                   ["heads", "seeds", "figures.hexbin_gridsize", "figures.dpi"],
                   ["src/vjepa/figures/mdn_3d.py", "src/vjepa/figures/mdn_hexbin.py"]),
    "mdn_pca": ([MDN_SAMPLES], ["seeds", "figures.dpi"], []),
    "mdn_hexbin": ([MDN_SAMPLES], ["seeds", "figures.hexbin_gridsize", "figures.dpi"], []),
    "mdn_3d": ([MDN_SAMPLES], ["seeds", "figures.dpi"], []),
    "mdn_diagnostics": ([MDN_SAMPLES], ["seeds", "figures.dpi"], []),
    "calibration": (runs("metrics.json"), ["heads", "seeds", "figures.dpi"], []),
    "masking_ablation": (ABLATION_RESULTS, ["ablation", "figures.dpi"], []),
}
assert set(FIGURE_SPECS) == set(FIGURES), "every figure module needs a FIGURE_SPECS entry"
STAGE_PARAMS.update({f"figure_{n}": spec[1] for n, spec in FIGURE_SPECS.items()})
STAGE_CODE.update({f"figure_{n}": _FIG_CODE + [f"src/vjepa/figures/{n}.py"] + spec[2]
                   for n, spec in FIGURE_SPECS.items()})
