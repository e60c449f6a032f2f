"""The study as a pipeline: the stage table both tools read (`stages`), the code each stage runs
(`codedeps`), dvc.yaml (`dvcfile`), GPU slots for parallel jobs (`gpus`) and the one-shot GPU study
(`gpu_study`).

The top layer under `vjepa.cli`: it may import any layer."""
