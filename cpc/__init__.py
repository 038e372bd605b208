"""cpc: Contrastive Predictive Coding and image SSL baselines, streamed from WebDataset shards."""

__version__ = "0.1.0"
