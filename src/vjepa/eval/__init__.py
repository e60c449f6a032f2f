"""Scoring a frozen encoder and its head: features (`embed`), kNN, the linear probe, the head's
distribution scores (`head_metrics`, `uncertainty`), the floors (`reference`) and the figures' draws.

Imports `vjepa.core`, `vjepa.data`, `vjepa.model`."""
