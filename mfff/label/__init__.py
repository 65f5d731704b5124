"""Data generation: conformer sampling, quantum-chemistry labellers, resumable shards, dataset assembly."""
