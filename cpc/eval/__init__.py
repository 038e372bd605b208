"""Evaluation on frozen features: extraction, probes, baselines, feature specs, ABX."""
