"""Data: keys, readers, per-source datamodules, the multi-fidelity mixer, neighbour lists, statistics."""
