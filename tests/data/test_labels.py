import numpy as np
import pytest

from cpc.data.labels import fit_labels, frame_samples, read_alignments, read_splits


def test_alignment_file(tmp_path):
    (tmp_path / "a.txt").write_text("19-198-0001 0 0 5 5\n19-198-0002 3\n")
    assert {k: v.tolist() for k, v in read_alignments(tmp_path / "a.txt").items()} == {
        "19-198-0001": [0, 0, 5, 5], "19-198-0002": [3]}
    (tmp_path / "b.txt").write_text("u1 0 x\n")
    with pytest.raises(ValueError, match="b.txt line 1: labels must be integers"):
        read_alignments(tmp_path / "b.txt")


def test_labels_fit_within_one_frame_and_frames_follow_the_rate(tmp_path):
    labels = np.array([1, 2, 3], dtype=np.int16)
    assert fit_labels(labels, 4, "u").tolist() == [1, 2, 3, 3] and fit_labels(labels, 2, "u").tolist() == [1, 2]
    with pytest.raises(ValueError, match="u: 3 frame labels for 5 frames of audio"):
        fit_labels(labels, 5, "u")
    assert frame_samples(16000) == 160 and frame_samples(8000) == 80
    (tmp_path / "test.txt").write_text("a.b\nc/d\n\n")
    assert read_splits([f"test={tmp_path / 'test.txt'}"]) == {"test": {"a_b", "c_d"}}
