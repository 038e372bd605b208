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


def test_a_speaker_level_deeper_than_a_files_path_names_the_file(tmp_path, corpus):
    from cpc.data.ingest import IngestError

    assert {i.speaker for i in items_from_folder(tmp_path / "wav", speaker_level=1)} == {"spk0", "spk1", "spk2"}
    with pytest.raises(IngestError) as error:
        items_from_folder(tmp_path / "wav", speaker_level=2)
    assert str(error.value) == (f"{tmp_path / 'wav/spk0/utt0.wav'} is 1 folder level(s) below {tmp_path / 'wav'}, "
                                "so --speaker-level 2 names no folder for its speaker: move it into a speaker folder, "
                                "or use a --speaker-level its path has")
    assert {i.speaker for i in items_from_folder(tmp_path / "wav" / "spk0")} == {""}  # flat, level 1: no speakers


def test_one_audio_file_is_a_corpus_of_one_and_non_finite_samples_never_load(tmp_path):
    import numpy as np
    import soundfile as sf

    from cpc.data.ingest import NonFiniteAudio, audio_blocks, items_from_path, load_audio

    wav = np.linspace(-0.5, 0.5, 5000, dtype=np.float32)
    sf.write(tmp_path / "one take.wav", wav, 16000, subtype="FLOAT")
    (item,) = items_from_path(tmp_path / "one take.wav")
    assert (item.path, item.key, item.speaker) == (str(tmp_path / "one take.wav"), "one_take", "")
    assert np.array_equal(np.concatenate(list(audio_blocks(item.path, 1200))), load_audio(item.path, 16000))
    wav[3100] = np.inf
    sf.write(tmp_path / "bad.wav", np.stack([wav, wav], axis=1), 16000, subtype="FLOAT")  # stereo
    for read in (lambda path: load_audio(path, 16000), lambda path: list(audio_blocks(path, 1000))):
        with pytest.raises(NonFiniteAudio, match=r"bad.wav: it holds NaN or infinite samples \(the first is sample "
                                                 r"3100\)$"):
            read(str(tmp_path / "bad.wav"))
