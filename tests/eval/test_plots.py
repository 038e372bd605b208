"""Confusion images: classes ordered by frequency, labelled with the corpus's phone names."""

import numpy as np

from cpc.data.labels import label_names_beside
from cpc.eval.plots import frequency_order, plot_confusion


def test_classes_are_ordered_by_frequency_and_labelled_with_names(tmp_path):
    confusion = np.array([[5, 1, 0, 1, 0],   # sil: 7 true frames
                          [0, 0, 0, 0, 0],   # aa: never true, but predicted 8 times: shown after the true ones
                          [2, 7, 9, 0, 0],   # ae: 18 true frames, the most frequent
                          [0, 0, 0, 0, 0],   # ah: never true, predicted once
                          [0, 0, 0, 0, 0]])  # ao: neither true nor predicted: not shown
    assert frequency_order(confusion).tolist() == [2, 0, 1, 3]
    shown = plot_confusion(confusion, tmp_path / "c.png", "phones", ["sil", "aa", "ae", "ah", "ao"])
    assert shown == ["ae", "sil", "aa", "ah"] and (tmp_path / "c.png").stat().st_size > 0
    assert plot_confusion(confusion, tmp_path / "ids.png", "phones") == ["2", "0", "1", "3"]


def test_the_bundled_corpus_names_its_phones_beside_its_splits():
    names = label_names_beside("datasets/synthetic_speech/sample/test")
    assert len(names) == 40 and names[:2] == ["sil", "aa"]
    assert label_names_beside("datasets/synthetic_speech/sample/test/index.json") == names
    assert label_names_beside("datasets/synthetic_speech/nowhere") is None
