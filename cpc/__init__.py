"""cpc: Contrastive Predictive Coding and image SSL baselines, streamed from WebDataset shards."""

__version__ = "0.1.0"


def load(path):
    """A trained model, ready in eval mode, from a checkpoint file or a run folder (its newest checkpoint)."""
    from cpc.train.pretrain import load_model

    return load_model(path)
