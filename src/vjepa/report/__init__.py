"""From the runs' outputs to the paper: Table I's numbers (`summarize`), the heads' pair verdicts
(`verdict`), the figures (`figures/`) and the LaTeX report (`latex`).

Imports every layer below it except `vjepa.training`, and `vjepa.pipeline` never."""
