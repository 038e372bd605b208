import io
import tarfile

from cpc.data.labelled import load_utterances


def test_utterances_come_whole_in_order_with_labels_and_rate(shards):
    folder, index, items, alignments = shards
    utterances = load_utterances(folder)
    assert [u.key for u in utterances] == [i.key for i in items]
    for u in utterances:
        assert u.sample_rate == 16000 and u.labels.tolist() == alignments[u.key][: len(u.wav) // 160].tolist()
    assert not utterances.skips.counts


def test_what_is_skipped_is_kept_with_the_reason(shards, tmp_path):
    folder, _, items, _ = shards
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        data = b"not flac"
        info = tarfile.TarInfo("broken.flac")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    utterances = load_utterances([str(bad), *sorted(str(p) for p in folder.glob("*.tar"))])
    assert len(utterances) == len(items) and utterances.skips.counts["unreadable audio or metadata"] == 1
    assert load_utterances(folder, sample_rate=8000) == []
    assert load_utterances(folder, sample_rate=8000).skips.counts["sample rate 16000 Hz, expected 8000"] == len(items)
