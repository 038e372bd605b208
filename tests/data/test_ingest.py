import pytest

from cpc.data.ingest import items_from_folder, items_from_manifest


def test_folder_and_manifest_items(tmp_path, corpus):
    items = items_from_folder(tmp_path / "wav")
    assert [(i.key, i.speaker) for i in items][:2] == [("spk0_utt0", "spk0"), ("spk0_utt3", "spk0")]
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\tspeaker\tgender\nwav/spk1/utt1.wav\talice\tf\n")
    (item,) = items_from_manifest(manifest)
    assert (item.speaker, item.key, item.fields) == ("alice", "utt1", {"gender": "f"})
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['speaker'\]"):
        (tmp_path / "bad.tsv").write_text("path\tgender\nx.wav\tf\n")
        items_from_manifest(tmp_path / "bad.tsv")
