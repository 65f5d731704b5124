"""Run operations: driving Lightning for a stage, checkpoint files, resume, preemption, finished jobs, the
pre-training cache, loggers and the console report. The training core (`mfff.train`) never imports this package."""
