"""Training one head: a step's inputs (`batch`), the loop with resume, DDP and its monitors (`train`),
timing (`throughput`) and the masking ablation's sweep (`ablation`).

Imports `vjepa.core`, `vjepa.data`, `vjepa.model`, `vjepa.eval` (the loop's kNN and head monitors)."""
