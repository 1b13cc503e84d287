"""Corpora and Kaldi-style data directories."""
