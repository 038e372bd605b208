"""Evaluation of learned features: ABX discriminability (abx)."""
