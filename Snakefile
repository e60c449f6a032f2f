# vjepa: the whole study as one DAG, driven by params.yaml (mirrored stage by stage in dvc.yaml).
#
#   snakemake --cores 8 report                                   # default profile (digits, CPU) -> report/vjepa.pdf
#   snakemake --cores 8 report --configfile profiles/paper.yaml  # another profile
#   snakemake --profile profiles/slurm report                    # on a SLURM cluster
#   snakemake --cores 8 ablation                                 # the masking sweep alone
#
# Every rule calls one `vjepa` command; see docs/architecture.md for the data flow.

configfile: "params.yaml"


include: "rules/common.smk"
include: "rules/stages.smk"
include: "rules/ablation.smk"


rule all:
    default_target: True
    input:
        "report/vjepa.pdf",


onsuccess:
    record_in_dvc()
