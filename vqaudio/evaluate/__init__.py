"""Evaluation: the phoneme probe, signal metrics (STOI, PESQ, MCD, log-mel), speaker identification,
ABX discrimination, codec baselines, plots and reports. `run.py` holds what the CLI commands call."""
