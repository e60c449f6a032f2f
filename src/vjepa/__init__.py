"""vjepa: I-JEPA with swappable deterministic and probabilistic predictor heads."""

__version__ = "0.1.0"
