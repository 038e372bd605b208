"""Evaluation on frozen features: extraction, probes, baselines, feature specs, ABX, units, an s3prl upstream.

`cpc.eval.upstream(path)` is the function that loads a checkpoint as an s3prl-style upstream (the module of the
same name is `from cpc.eval.upstream import Upstream`)."""

from cpc.eval.upstream import Upstream, upstream  # noqa: F401  (the function takes the module's name on purpose)
