"""Using a trained model: the inference model (no Lightning, no Hydra), its files, and what runs it."""
