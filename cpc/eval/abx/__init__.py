"""ABX phone discriminability (Libri-light / ZeroSpeech 2021), the within/across speaker error computed as the
reference `zrc_abx2` does, with every DTW of many cells run at once in torch. One module per step:
`items` (item files, read and written from frame alignments), `frames` (each item's normalised frames from a
feature source of cpc.eval.sources), `dtw` (frame distances and the batched DTW), `cells` (the (A, B, X) cells
and the items drawn for them) and `score` (`abx_errors`: cells scored and averaged). This file holds only the
error they share."""

from cpc.errors import UserError


class ABXError(UserError, ValueError):
    """A bad item file, feature array or ABX option; the message names it and where."""
