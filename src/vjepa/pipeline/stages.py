"""The pipeline's stages, written once: Snakemake's rules (`rules/stages.smk`) read this table and
`vjepa dvc-yaml` renders `dvc.yaml` from it.

A stage is one `vjepa` command. Paths and keys are templates over the stage's wildcards:
`{head}`, `{seed}` (a training run), `{first_seed}` (the first of `seeds`), `{area}`, `{blocks}`
(a point of the masking sweep). `RUNS/name` stands for file `name` of every run (every head and
seed): Snakemake lists them, DVC names the folder `results/heads` (it cannot list a variable
number of files). The package files a stage runs are not written here: `vjepa.pipeline.codedeps` reads
them from the imports.

`over` says what one job of the stage is: `None` (one job), `"run"` (per head and seed),
`"head"` (per head, on its first seed), `"point"` (per sweep point, of `ablation.head`) or
`"figure"` (one stage per figure).
"""

from __future__ import annotations

from dataclasses import dataclass

from vjepa.core.config import ablation_point_name, ablation_points
from vjepa.pipeline.gpus import GPU_COMMANDS
from vjepa.report.figures import figure_names

PROCESSED = ("data/processed/train.npz", "data/processed/val.npz")
RUN = "results/heads/{head}/seed{seed}"
RUNS = "RUNS"  # RUNS/name: file `name` of every run


@dataclass(frozen=True)
class Out:
    path: str
    directory: bool = False
    cached: bool = True  # False: committed to Git, not DVC's cache (metrics, curves)
    metric: bool = False
    plot: tuple[str, str] | None = None  # (x, y) columns of a CSV DVC plots


@dataclass(frozen=True)
class Stage:
    name: str
    command: str  # the `vjepa` command, with its arguments (templates)
    inputs: tuple[str, ...]
    outs: tuple[Out, ...]
    params: tuple[str, ...]  # dotted keys the command reads (a section stands for all its keys)
    over: str | None = None
    log: str = ""  # under logs/, without suffix; default: the stage's name
    threads: str | None = None  # "train": a share of the cores (trainings run side by side); "one"
    figure: str | None = None
    launched: bool = False  # its command starts launch.nproc x launch.nnodes processes (vjepa.core.launch)

    @property
    def vjepa_command(self) -> str:
        return self.command.split()[0]

    @property
    def gpu(self) -> bool:
        """Whether its command runs on CUDA when there is one (then it needs, and claims, one GPU)."""
        return self.vjepa_command in GPU_COMMANDS


_TRAINING = (
    "data.image_size",
    "data.num_classes",
    "model",
    "mask",
    "augment",
    "trunk",
    "train",
    "eval.knn_k",
    "eval.knn_temperature",
    "eval.batch_size",
    "head.{head}",
)
_PROBE = ("eval.knn_k", "eval.knn_temperature", "eval.probe_steps", "eval.probe_weight_decay")

STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare",
        "prepare",
        (),
        tuple(Out(p) for p in PROCESSED),
        ("data.source", "data.path", "data.image_size", "data.num_classes", "data.val_fraction", "data.split_seed"),
    ),
    Stage("stats", "stats", PROCESSED, (Out("data/stats.json"),), ("seed", "data.stats_subsample")),
    Stage(
        "train",
        "train --head {head} --seed {seed}",
        (*PROCESSED, "data/stats.json"),
        (
            Out(f"{RUN}/checkpoint.pt"),
            Out(f"{RUN}/tb", directory=True),
            Out(f"{RUN}/train_curve.csv", cached=False, plot=("step", "loss")),
            Out(f"{RUN}/knn_curve.csv", cached=False, plot=("step", "knn_top1")),
        ),
        (*_TRAINING, "launch"),
        over="run",
        log="train/{head}-seed{seed}",
        threads="train",
        launched=True,
    ),
    Stage(
        "embed",
        "embed --head {head} --seed {seed}",
        (*PROCESSED, "data/stats.json", f"{RUN}/checkpoint.pt"),
        (Out(f"{RUN}/embeddings.npz"),),
        ("train.device", "eval.batch_size"),
        over="run",
        log="embed/{head}-seed{seed}",
        threads="one",
    ),
    Stage(
        "evaluate",
        "evaluate --head {head} --seed {seed}",
        ("data/processed/val.npz", "data/stats.json", f"{RUN}/checkpoint.pt", f"{RUN}/embeddings.npz"),
        (Out(f"{RUN}/metrics.json", cached=False, metric=True),),
        ("seed", "data.image_size", "data.num_classes", "mask", "train.device", "eval"),
        over="run",
        log="evaluate/{head}-seed{seed}",
        threads="one",
    ),
    Stage(
        "reference",
        "reference",
        (*PROCESSED, "data/stats.json"),
        (Out("results/reference/metrics.json", cached=False, metric=True),),
        ("seed", "data.image_size", "data.num_classes", "model", "train.device", "eval.batch_size", *_PROBE),
        threads="one",
    ),
    Stage(
        "summarize",
        "summarize",
        (f"{RUNS}/metrics.json", "results/reference/metrics.json"),
        (
            Out("results/metrics.json", cached=False, metric=True),
            Out("report/generated/table1.tex"),
            Out("report/generated/numbers.tex"),
            Out("report/generated/uncertainty.tex"),
            Out("report/generated/comparison.tex"),
        ),
        ("seed", "heads", "seeds", "data.source", "head", "train.batch_size"),
    ),  # head: its batch size overrides
    Stage(
        "ablate",
        "ablate --area {area} --blocks {blocks}",
        (*PROCESSED, "data/stats.json"),
        (
            Out("results/ablation/area{area}_blocks{blocks}", directory=True),
            Out("results/ablation/area{area}_blocks{blocks}.json", cached=False, metric=True),
        ),
        ("seeds", *_TRAINING, "eval.probe_steps", "eval.probe_weight_decay", "ablation.head", "ablation.steps"),
        over="point",
        log="ablation/area{area}_blocks{blocks}",
        threads="train",
    ),
    Stage(
        "samples",
        "samples --head {head} --seed {first_seed}",
        ("data/processed/val.npz", "data/stats.json", "results/heads/{head}/seed{first_seed}/checkpoint.pt"),
        (Out("results/heads/{head}/seed{first_seed}/samples.npz"),),
        ("seed", "train.device", "figures.num_samples", "figures.batch_images"),
        over="head",
        log="samples/{head}",
        threads="train",
    ),
)

# The report's figures: name -> (inputs, params it reads). The MDN ones exist only with `mdn` among the heads.
_MDN_SAMPLES = "results/heads/mdn/seed{first_seed}/samples.npz"
FIGURE_INPUTS = {
    "losses": ((f"{RUNS}/tb",), ("heads", "seeds", "figures.dpi")),
    "knn": ((f"{RUNS}/knn_curve.csv",), ("heads", "seeds", "figures.dpi")),
    "masks": (
        ("data/processed/val.npz",),
        ("seed", "data.image_size", "model.patch_size", "mask", "figures.mask_images", "figures.dpi"),
    ),
    "heads_grid": (("HEADS/samples.npz",), ("heads", "seeds", "figures.hexbin_gridsize", "figures.dpi")),
    "mdn_pca": ((_MDN_SAMPLES,), ("seeds", "figures.dpi")),
    "mdn_hexbin": ((_MDN_SAMPLES,), ("seeds", "figures.hexbin_gridsize", "figures.dpi")),
    "mdn_3d": ((_MDN_SAMPLES,), ("seeds", "figures.dpi")),
    "mdn_diagnostics": ((_MDN_SAMPLES,), ("seeds", "figures.dpi")),
    "calibration": ((f"{RUNS}/metrics.json",), ("heads", "seeds", "figures.dpi")),
    "gradient_share": ((f"{RUNS}/metrics.json",), ("heads", "seeds", "figures.dpi")),
    "masking_ablation": (("ABLATION",), ("ablation", "figures.dpi")),
}

GENERATED_TEX = ("setup", "figures", "provenance", "trunk", "gpu", "studies")
SUMMARY_TEX = ("table1", "numbers", "uncertainty", "comparison")


def figure_stage(name: str) -> Stage:
    inputs, params = FIGURE_INPUTS[name]
    return Stage(
        f"figure_{name}",
        f"figure {name}",
        inputs,
        (Out(f"report/figures/{name}.pdf"), Out(f"report/figures/{name}.png")),
        params,
        over="figure",
        log=f"figures/{name}",
        figure=name,
    )


REPORT = Stage(
    "report",
    "report",
    (
        "report/vjepa.tex",
        *(f"report/generated/{n}.tex" for n in SUMMARY_TEX),
        "FIGURES",
        *PROCESSED,
        "data/stats.json",
        f"{RUNS}/checkpoint.pt",
        "benchmarks/results",
        "results/gpu",
        "results/studies",
    ),
    (Out("report/vjepa.pdf"), *(Out(f"report/generated/{n}.tex") for n in GENERATED_TEX)),
    ("seed", "seeds", "heads", "data", "model", "mask", "augment", "trunk", "train", "eval", "head"),
)


def job_resources(st: Stage, launch: dict) -> dict:
    """Snakemake resources of one job of `st`. `gpu`: the GPUs it takes (launch.nproc for a training;
    `--resources gpu=N` bounds their sum). A training across nodes (launch.nnodes > 1, SLURM only)
    asks instead for its nodes with launch.nproc GPUs each (gres) and one task per node; `mpi` tells
    the SLURM executor that the command starts its own tasks (srun, in vjepa.core.launch)."""
    if not st.gpu:
        return {"gpu": 0}
    if not st.launched:
        return {"gpu": 1}
    nproc, nnodes = launch["nproc"], launch["nnodes"]
    if nnodes == 1:
        return {"gpu": nproc}
    return {"gpu": 0, "gres": f"gpu:{nproc}", "nodes": nnodes, "tasks": nnodes, "tasks_per_gpu": 0, "mpi": "srun"}


def stages(params: dict) -> list[Stage]:
    """Every stage of the pipeline for these params, in order (the figures those heads have)."""
    return [*STAGES, *(figure_stage(n) for n in figure_names(params["heads"])), REPORT]


def stage(name: str, params: dict) -> Stage:
    return next(s for s in stages(params) if s.name == name)


def ablation_results(params: dict) -> list[str]:
    """Every sweep point's scores file (config.ablation_point_name)."""
    return [f"results/ablation/{ablation_point_name(a, b)}.json" for a, b in ablation_points(params)]


def head_of(st: Stage, params: dict, head: str | None) -> str | None:
    """The head whose files a job of `st` runs: its own, or the sweep's for a point."""
    return params["ablation"]["head"] if st.over == "point" else head


def fill(template: str, values: dict) -> str:
    """`template` with the wildcards it has from `values` (str.format, names only)."""
    return template.format(**values)


def inputs(st: Stage, params: dict, values: dict, listed: bool) -> list[str]:
    """A stage's input files. `listed`: every run's file spelled out (Snakemake); otherwise the
    folders that hold them (DVC). `values` fills the templates."""
    heads, seeds = params["heads"], params["seeds"]
    first = {"first_seed": seeds[0], **values}
    out = []
    for item in st.inputs:
        if item.startswith(f"{RUNS}/"):
            name = item.split("/", 1)[1]
            out += [f"results/heads/{h}/seed{s}/{name}" for h in heads for s in seeds] if listed else ["results/heads"]
        elif item.startswith("HEADS/"):
            name = item.split("/", 1)[1]
            out += [f"results/heads/{h}/seed{seeds[0]}/{name}" for h in heads] if listed else ["results/heads"]
        elif item == "ABLATION":
            out += ablation_results(params) if listed else ["results/ablation"]
        elif item == "FIGURES":
            out += [f"report/figures/{n}.pdf" for n in figure_names(heads)] if listed else ["report/figures"]
        else:
            out.append(fill(item, first))
    return list(dict.fromkeys(out))
