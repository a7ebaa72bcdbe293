"""The run: launch (one process or several), resume, the training loop read as phases, Ignite's engines
and the standard handlers, checkpoints, the run directory and its lock, seeded resumable loaders."""
