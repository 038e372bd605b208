"""cpc: Contrastive Predictive Coding and image SSL baselines, streamed from WebDataset shards."""

from cpc.version import __version__


def load(path, weights: bool = True, device="cpu"):
    """A trained model, ready in eval mode, from a checkpoint file or a run folder (its newest checkpoint); built
    from the model config stored in the file, read safely (weights_only), without touching the global RNG."""
    from cpc.checkpoint import load as load_checkpoint  # imported on use: `import cpc` stays light

    return load_checkpoint(path, weights, device)
