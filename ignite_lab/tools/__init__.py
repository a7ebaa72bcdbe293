"""What is done with runs and checkpoints: eval, predict, export, profile, compare, reproduce and sweeps."""
