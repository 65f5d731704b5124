"""Training: the LightningModule (one shared _step), losses, metrics, schedules, strategies, the run driver."""
