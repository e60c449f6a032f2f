"""The images: data sources prepared to arrays (`sources`) and the views' augmentation (`augment`).

Imports only `vjepa.core`."""
