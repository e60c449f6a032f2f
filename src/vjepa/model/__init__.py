"""The network and its objective: the ViT (`vit`), the masks, the JEPA with its EMA teacher (`jepa`), the
cross-view trunk (`trunk`, `regularizers`), the predictor heads (`heads/`), the parts' gradient shares
and the checkpoint files a trained model lives in.

Imports only `vjepa.core`."""
