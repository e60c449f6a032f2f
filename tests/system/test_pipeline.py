"""The Snakefile and dvc.yaml describe one pipeline, and the two tools stay in sync.

The DAG test compares stage by stage (names, commands, deps, outs, params); the end-to-end
test runs the smoke profile through both tools in a scratch git repository.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from project import BIN, COPIED, ROOT, commit, needs_tools, project_copy, run  # noqa: F401


def dags(root: Path) -> tuple[list[dict], list[dict]]:
    dump = lambda tool: json.loads(run([sys.executable, str(ROOT / "tests/pipeline_dags.py"), tool, root], root).stdout)
    return dump("snakemake"), dump("dvc")


def dvc_name(rule: str, w: dict) -> str:
    """DVC's name for a Snakemake job: rule-head@seed for the per-run stages, rule-head per head,
    rule@area-blocks for the masking sweep (vjepa.pipeline.dvcfile)."""
    if "area" in w:
        return f"{rule}@{w['area']}-{w['blocks']}"
    if "head" not in w:
        return rule
    return f"{rule}-{w['head']}" + (f"@{w['seed']}" if w.get("seed") is not None else "")


def job_name(job: dict) -> str:
    return dvc_name(job["rule"], job["wildcards"])


@needs_tools
def test_snakemake_and_dvc_describe_the_same_stages(tmp_path):
    jobs, stages = dags(project_copy(tmp_path))
    jobs = {job_name(j): j for j in jobs if j["rule"] != "all"}
    stages = {s["name"]: s for s in stages}
    assert set(jobs) == set(stages)
    assert {"train-rnade@0", "embed-flow_matching@0", "evaluate-diffusion@0", "samples-mdn", "summarize"} <= set(stages)
    for name, stage in stages.items():
        job = jobs[name]
        # Snakemake adds only its per-job thread count and the log redirection to the DVC command.
        assert re.fullmatch(re.escape(stage["cmd"]) + r"( --threads \d+)? > \S+ 2>&1", job["shell"]), name
        # A directory dep in DVC (results/heads for the summary) stands for the files under it.
        dirs = [d for d in stage["deps"] if not Path(d).suffix]
        inputs = {next((d for d in dirs if i.startswith(d + "/")), i) for i in job["input"]}
        assert inputs == set(stage["deps"]), name
        assert set(job["output"]) == set(stage["outs"]), name
        assert set(job["params"]["values"]) == set(stage["params"]), name
    uncached = {o for s in stages.values() for o in s["uncached"]}
    assert {
        "results/metrics.json",
        "results/reference/metrics.json",
        "results/heads/mdn/seed0/metrics.json",
    } <= uncached
    assert not any(o.endswith(("checkpoint.pt", ".npz")) for o in uncached)


@needs_tools
def test_dag_test_notices_drift(tmp_path):
    """The comparison above fails when one tool's stage changes alone."""
    root = project_copy(tmp_path)
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("    - data.stats_subsample\n", "", 1))
    jobs, stages = dags(root)
    stats_job = next(j for j in jobs if j["rule"] == "stats")
    stats_stage = next(s for s in stages if s["name"] == "stats")
    assert set(stats_job["params"]["values"]) != set(stats_stage["params"])


@needs_tools
def test_lint_is_clean_and_dvc_reads_the_pipeline(tmp_path):
    root = project_copy(tmp_path, None)
    lint = run(["snakemake", "--lint"], root)
    assert "good condition" in lint.stdout + lint.stderr
    dot = run(["dvc", "dag", "--dot"], root).stdout  # (`dvc repro --dry` runs in the end-to-end test)
    assert '"train-deterministic@0" -> "embed-deterministic@0"' in dot


@needs_tools
def test_bad_params_stop_snakemake_before_any_job(tmp_path):
    root = project_copy(tmp_path)
    params = root / "params.yaml"
    text, n = re.subn(r"(?m)^(train:\n(?:  .*\n)*?  batch_size:) \d+", r"\1 -3", params.read_text())
    assert n == 1
    params.write_text(text)
    done = run(["snakemake", "-n"], root, check=False)
    assert done.returncode != 0
    assert "train.batch_size" in done.stdout + done.stderr
    done = run(["snakemake", "-n", "--config", "seed=1"], project_copy(tmp_path / "b"), check=False)
    assert done.returncode != 0 and "--config is not supported" in done.stdout + done.stderr


def planned_snakemake(root: Path) -> set[str]:
    jobs, rule = set(), None
    for line in run(["snakemake", "-n", "all"], root).stdout.splitlines():
        if m := re.match(r"rule (\w+):", line.strip()):
            rule = m.group(1)
            if rule != "all":
                jobs.add(rule)
        elif (m := re.match(r"wildcards: head=(\w+)(?:, seed=(\d+))?", line.strip())) and rule:
            jobs.discard(rule)
            jobs.add(dvc_name(rule, {"head": m.group(1), "seed": m.group(2)}))
    return jobs


def dvc_ran(out: str) -> set[str]:
    """The stages that a `dvc repro` run (or dry run) with output `out` ran."""
    return set(re.findall(r"Running stage '([\w@-]+)'", out))


def planned_dvc(root: Path) -> set[str]:
    return dvc_ran(run(["dvc", "repro", "--dry"], root).stdout)


def covers(declared: str, read: str) -> bool:
    """Declaring `declared` covers reading `read`: the same key or a key under that section."""
    return read == declared or read.startswith(declared + ".")


# Declared keys a smoke run does not read, and why.
UNREAD_ON_SMOKE = {("summarize", "head"): "per-head overrides of train.batch_size; the smoke profile has none"}


def check_declarations(audit: Path, root: Path, example_head: str = "mdn") -> None:
    """Each command's record against its stage: every package module it loaded is a declared code
    dep, every params key it read is declared, and every declared key was read."""
    from vjepa.core.config import load_params
    from vjepa.pipeline.codedeps import _module_file, closure
    from vjepa.pipeline.stages import head_of, stages

    params = load_params(root / "params.yaml")
    table = {st.name: st for st in stages(params)}
    records = {p.stem: json.loads(p.read_text()) for p in audit.glob("*.json")}
    assert {
        "prepare",
        "stats",
        f"train@{example_head}-0",
        f"embed@{example_head}-0",
        f"evaluate@{example_head}-0",
        "reference",
        "summarize",
        f"samples@{example_head}-0",
        "figure@knn",
        "report",
    } <= set(records)
    assert any(name.startswith("ablate@") for name in records)
    for name, record in records.items():
        command, _, run_of = name.partition("@")
        st = table[f"figure_{run_of}" if command == "figure" else command]
        head = run_of.split("-")[0] if st.over in ("run", "head") else None
        code = set(closure(st.vjepa_command, head=head_of(st, params, head), figure=st.figure))
        loaded = {
            "src/vjepa/" + _module_file(m).relative_to(_module_file("vjepa").parent).as_posix()
            for m in record["modules"]
        }
        assert loaded <= code, (name, loaded - code)
        declared = [k.format(head=head_of(st, params, head)) for k in st.params]
        read = record["params"]
        assert all(any(covers(d, r) for d in declared) for r in read), (
            name,
            [r for r in read if not any(covers(d, r) for d in declared)],
        )
        unread = [d for d in declared if not any(covers(d, r) or covers(r, d) for r in read)]
        assert all((st.name, d) in UNREAD_ON_SMOKE for d in unread), (name, unread)


@pytest.mark.slow(seconds=500)
@needs_tools
@pytest.mark.skipif(
    shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
    reason="LaTeX and poppler-utils are installed by scripts/setup.sh (as root on Debian)",
)
def test_smoke_profile_through_both_tools(tmp_path):
    """Snakemake builds the smoke pipeline through the PDF and DVC agrees that every stage is up to
    date; a param change is then run by DVC, Snakemake agrees, and the change undone comes back from
    DVC's run cache. test_snakemake_and_dvc_describe_the_same_stages holds each stage's command, deps,
    outs and params equal in both tools, so DVC running the changed chain stands for DVC running any
    stage."""
    root = project_copy(tmp_path / "p")
    audit = tmp_path / "audit"  # every command records the params keys and modules it used
    run(["snakemake", "--cores", "2", "all"], root, env={"VJEPA_AUDIT": str(audit)})  # onsuccess: dvc.lock
    check_declarations(audit, root)
    assert "up to date" in run(["dvc", "status"], root).stdout  # DVC's hashes of Snakemake's outputs
    summary = json.loads((root / "results/metrics.json").read_text())
    assert summary["heads"].keys() == {"deterministic", "mdn", "rnade", "flow", "flow_matching", "diffusion"}
    text = run(["pdftotext", "-layout", "report/vjepa.pdf", "-"], root).stdout
    for head, row in summary["heads"].items():  # Table I in the PDF shows the summary's numbers
        name = {
            "deterministic": "Deterministic",
            "mdn": "Mixture density",
            "rnade": "Autoregressive",
            "flow": "RealNVP",
            "flow_matching": "Flow matching",
            "diffusion": "Diffusion",
        }[head]
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(name) and "&" not in ln)
        assert f"{100 * row['knn_top1']:.2f}" in line and f"{100 * row['knn_top5']:.2f}" in line, line
    raw = 100 * summary["reference"]["raw_pixels"]["top1"]
    assert f"kNN on raw pixels gives {raw:.2f} %" in " ".join(text.split())
    assert planned_snakemake(root) == set()
    commit(root, "results")

    params = root / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("  hexbin_gridsize: 40", "  hexbin_gridsize: 30"))
    plotting = {"figure_mdn_hexbin", "figure_heads_grid", "report"}  # a plotting setting: no training
    assert planned_snakemake(root) == plotting
    assert planned_dvc(root) <= plotting
    params.write_text(original)

    params.write_text(params.read_text().replace("  flow:\n    num_layers: 2", "  flow:\n    num_layers: 3"))
    chain = {
        "train-flow@0",
        "embed-flow@0",
        "evaluate-flow@0",
        "samples-flow",
        "summarize",
        "figure_losses",
        "figure_knn",
        "figure_heads_grid",
        "figure_calibration",
        "figure_gradient_share",
        "report",
    }
    assert planned_snakemake(root) == chain
    # DVC plans the changed stages; their dependants follow when their inputs actually change.
    assert "train-flow@0" in planned_dvc(root) <= chain

    out = run(["dvc", "repro"], root).stdout  # DVC runs the chain itself
    assert dvc_ran(out) == chain, out
    run(["snakemake", "--cores", "1", "--touch", "--forceall", "all"], root)  # tells Snakemake about DVC's run
    assert planned_snakemake(root) == set()
    assert "up to date" in run(["dvc", "status"], root).stdout
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], root).stdout)
    assert "results/heads/flow/seed0/metrics.json" in diff
    assert "results/heads/mdn/seed0/metrics.json" not in diff

    params.write_text(params.read_text().replace("  flow:\n    num_layers: 3", "  flow:\n    num_layers: 2"))
    out = run(["dvc", "repro"], root).stdout  # recorded in DVC's run cache by Snakemake's onsuccess: restored
    ran = re.findall(r"Running stage '([\w@-]+)'|Stage '([\w@-]+)' is cached", out)
    assert {a or b for a, b in ran} == chain, out
    run(["snakemake", "--cores", "1", "--touch", "--forceall", "all"], root)  # tells Snakemake about DVC's run
    assert planned_snakemake(root) == set()
    assert "up to date" in run(["dvc", "status"], root).stdout


@pytest.mark.slow(seconds=60)
@needs_tools
@pytest.mark.skipif(
    shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
    reason="LaTeX and poppler-utils are installed by scripts/setup.sh (as root on Debian)",
)
def test_smoke_pipeline_with_two_processes_per_training_through_snakemake(tmp_path):
    """launch.nproc: 2 — the training is a 2-process gloo run that `vjepa train` starts under torchrun;
    the rest of the pipeline, through the PDF, is unchanged. One head, the flow (ActNorm's
    data-dependent start); test_distributed holds every head's 2-process step to the 1-process one."""
    root = project_copy(tmp_path / "p")
    params = root / "params.yaml"
    text = params.read_text().replace("\n  nproc: 1 ", "\n  nproc: 2 ", 1)
    params.write_text(
        text.replace("\nheads: [deterministic, mdn, rnade, flow, flow_matching, diffusion]", "\nheads: [flow]")
    )
    audit = tmp_path / "audit"
    run(["snakemake", "--cores", "2", "report"], root, env={"VJEPA_AUDIT": str(audit)})
    check_declarations(audit, root, example_head="flow")  # rank 0's record: what the training read and loaded
    summary = json.loads((root / "results/metrics.json").read_text())
    assert summary["heads"].keys() == {"flow"}
    for head in summary["heads"]:
        log = (root / f"logs/train/{head}-seed0.log").read_text()
        assert "torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 -m vjepa train" in log, log
        assert log.count(f"trained {head} (seed 0)") == 1  # rank 0 alone reports
    assert (root / "report/vjepa.pdf").stat().st_size > 0


def test_every_profile_is_a_complete_valid_params_file():
    from vjepa.core.config import load_params, resolve

    for path in sorted((ROOT / "profiles").glob("*.yaml")):
        params = load_params(path)  # schema + cross-key checks
        for head in params["heads"]:
            resolve(params, head)
    paper = load_params(ROOT / "profiles/paper.yaml")
    assert paper["data"]["image_size"] == 64 and paper["model"]["embed_dim"] == 384
    assert resolve(paper, "mdn").train.batch_size == 360 and resolve(paper, "rnade").model.embed_dim == 600


def test_snakemake_profiles_name_existing_rules_and_give_every_gpu_stage_a_gpu():
    import yaml

    from vjepa.core.config import load_params
    from vjepa.pipeline.stages import stages

    table = stages(load_params(ROOT / "profiles/paper.yaml"))
    rules = {st.name for st in table}
    for path in (ROOT / "profiles").glob("*/config.yaml"):
        profile = yaml.safe_load(path.read_text())
        for section in ("set-resources", "set-threads"):
            assert set(profile.get(section, {})) <= rules, (path, section)
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    gpu_rules = {st.name for st in table if st.gpu}
    assert gpu_rules == {"train", "embed", "evaluate", "reference", "ablate", "samples"}
    for rule in gpu_rules - {"train"}:
        res = slurm["set-resources"][rule]
        assert res["slurm_partition"] == "gpu" and res["gpu"] == 1 and res["runtime"] >= 60, rule
        assert res["mem_mb"] >= 32000 and res["cpus_per_task"] >= 8, rule
    train = slurm["set-resources"]["train"]  # per GPU; the rule's own resources give launch.nproc GPUs
    assert train["slurm_partition"] == "gpu" and "gpu" not in train and train["cpus_per_task"] == 0
    assert train["cpus_per_gpu"] >= 8 and train["cpus_per_gpu"] * train["mem_mb_per_cpu"] >= 32000
    assert train["runtime"] >= 720  # 20,000 steps at batch 600 with room to spare


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import snakemake_executor_plugin_slurm"]).returncode != 0,
    reason="the SLURM executor plugin is a test extra (pip install -e '.[test]')",
)
@pytest.mark.parametrize("nproc, nnodes", [(1, 1), (4, 1), (4, 2)])
def test_a_training_asks_slurm_for_its_gpus_nodes_and_tasks(nproc, nnodes):
    """The sbatch call the SLURM executor makes for a training job with the profile's train resources."""
    import yaml
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    from vjepa.core.config import load_params
    from vjepa.pipeline.stages import job_resources, stage

    class Resources(dict):
        __getattr__ = dict.__getitem__

    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    rule = job_resources(stage("train", load_params(ROOT / "profiles/paper.yaml")), {"nproc": nproc, "nnodes": nnodes})
    job = type(
        "Job",
        (),
        {
            "resources": Resources({**slurm["default-resources"], **rule, **slurm["set-resources"]["train"]}),
            "threads": 8,
        },
    )()
    params = {
        "run_uuid": "u",
        "slurm_logfile": "log",
        "comment_str": "train",
        "account": "",
        "partition": "-p gpu",
        "workdir": None,
    }
    call = get_submit_command(job, params) + set_gres_string(job)
    assert "--cpus-per-gpu=8" in call and "--mem-per-cpu 8000" in call and "--ntasks-per-gpu" not in call, call
    if nnodes == 1:
        assert f"--gpus={nproc}" in call and "--nodes" not in call and "--gres" not in call, call
    else:
        assert f"--nodes={nnodes}" in call and f"--ntasks={nnodes}" in call and f"--gres=gpu:{nproc}" in call, call
        assert "--gpus=" not in call, call


@needs_tools
@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import snakemake_executor_plugin_slurm"]).returncode != 0,
    reason="the SLURM executor plugin is a test extra (pip install -e '.[test]')",
)
def test_slurm_profile_plans_the_paper_study(tmp_path):
    """With the executor plugin and stand-in SLURM commands on PATH, the paper study plans: every
    GPU rule on the GPU partition with one GPU, the others on the CPU partition; nothing submitted."""
    root = project_copy(tmp_path / "p", None)
    fake = tmp_path / "bin"
    fake.mkdir()
    for cmd in ("sbatch", "squeue", "sacct", "sinfo", "scancel", "sacctmgr", "srun"):
        (fake / cmd).write_text(f"#!/bin/sh\necho {cmd} >> {tmp_path}/calls.log\nexit 0\n")
        (fake / cmd).chmod(0o755)
    out = run(
        ["snakemake", "--profile", "profiles/slurm", "-n", "report", "--configfile", "profiles/paper.yaml"],
        root,
        path=[fake],
    ).stdout
    blocks = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", out, flags=re.M)
    planned = {}
    for rule, resources in blocks:
        planned.setdefault(rule, set()).add(resources)
    assert {"train", "embed", "evaluate", "reference", "samples", "summarize", "report"} <= set(planned)
    for rule, seen in planned.items():
        for resources in seen:
            gpu_rule = rule in {"train", "embed", "evaluate", "reference", "ablate", "samples"}
            assert ("slurm_partition=gpu" in resources and "gpu=1" in resources) == gpu_rule, (rule, resources)
            assert ("cpus_per_gpu=8" in resources) == (rule == "train"), (rule, resources)
    assert "runtime=1440" in next(iter(planned["train"]))
    assert not (tmp_path / "calls.log").exists() or "sbatch" not in (tmp_path / "calls.log").read_text()
