"""What every layer uses: the params (`config`, `schema.yaml`), errors, atomic files, devices and seeding
(`runtime`), ranks and their collectives (`distributed`, `launch`), and the params audit.

The bottom layer: it imports nothing else from vjepa."""
