"""Evaluation: the phoneme probe, signal metrics (STOI, PESQ, MCD, log-mel), speaker identification, word
recognition, ABX discrimination, codec baselines, plots and reports; `run.py` (`vqaudio evaluate`), `real.py`
(`evaluate-real`) and `enrollment.py` (`evaluate-enrollment`) hold what the CLI calls.

The top of the library: may import training (enrolment), inference (every figure is made through the codec
library), models, nn, data and the foundations; nothing but the CLI imports it.
"""
