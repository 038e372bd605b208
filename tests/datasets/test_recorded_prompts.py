import gzip
import importlib.util
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc.data.labelled import load_utterances
from cpc.data.labels import read_alignments

from .conftest import load_script

prompts = load_script("datasets/recorded_prompts/make_shards.py")
check = load_script("datasets/recorded_prompts/check_alignment.py")
synthetic = load_script("datasets/synthetic_speech/make_corpus.py")

has_g722 = importlib.util.find_spec("G722") is not None
has_sphinx = importlib.util.find_spec("pocketsphinx") is not None
needs_g722 = pytest.mark.skipif(not has_g722, reason="the PyPI package g722 is not installed")


def test_phone_classes_are_the_synthetic_corpus_classes():
    assert prompts.PHONES == synthetic.PHONES and len(prompts.PHONES) == 40
    assert prompts.fold_phone("AA") == "aa" and prompts.fold_phone("ZH") == "zh"
    assert {prompts.fold_phone(p) for p in ("SIL", "+NSN+", "+SPN+")} == {"sil"}
    with pytest.raises(ValueError, match="unknown phone 'AX'"):
        prompts.fold_phone("AX")


def test_transcript_list_parsing():
    text = ("\ufeff; Core Asterisk Sounds in English\n\nhello-world: Hello world.\ndigits/7: seven\n"
            "at-tone-time-exactly: At the sound of the tone: exactly...\ndigits/7: again\nnot a prompt line\n")
    assert prompts.parse_transcripts(text) == {
        "hello-world": "Hello world.", "digits/7": "seven", "at-tone-time-exactly": "At the sound of the tone: exactly..."}


def test_speech_or_not():
    assert prompts.is_speech("hello-world", "Hello world.") and prompts.is_speech("letters/at", "at [@]")
    assert not prompts.is_speech("silence/3", "(3 seconds of silence)")
    assert not prompts.is_speech("beep") and not prompts.is_speech("tt-monkeys", "")  # by name, any language
    assert not prompts.is_speech("anything", "[sound of monkeys screaming]")
    assert not prompts.is_speech("anything", "<beep ascending>") and not prompts.is_speech("confbridge-join")


def test_english_transcripts_become_dictionary_words():
    words = prompts.english_words("Press 1 to mute, 42 or # to exit. A.M. 3D audio; party's [@] touchtone")
    assert words == ["press", "one", "to", "mute", "forty", "two", "or", "pound", "to", "exit", "a", "m", "three",
                     "d", "audio", "party's", "touch", "tone"]
    assert prompts.english_words("dial 500 now") is None  # five hundred? five oh oh? no single reading
    assert prompts.english_words("a 28.8 kilobit modem") is None
    assert prompts.number_words(0) == ["zero"] and prompts.number_words(90) == ["ninety"]


def test_sphinx_phones_become_cpc_frame_labels():
    # PocketSphinx frames [0, 10) silence, [10, 20) AA, [20, 25) T: its frame t is centred 12.8 ms after 10 t ms
    entries = [("<sil>", "SIL", 0, 10), ("hot(2)", "AA", 10, 10), ("hot(2)", "T", 20, 5)]
    segments = prompts.phone_segments(entries)
    assert segments[1][:2] == ("hot", "aa")
    assert segments[1][2] == pytest.approx(0.1 + 0.0078125) and segments[2][3] == pytest.approx(0.25 + 0.0078125)
    labels = prompts.frame_labels(segments, samples=30 * 160)
    ids = {p: prompts.PHONES.index(p) for p in ("sil", "aa", "t")}
    # CPC frame k (centre 10 k + 5 ms) gets PocketSphinx frame k - 1's phone; frames after the last phone: silence
    assert labels.tolist() == [ids["sil"]] * 11 + [ids["aa"]] * 10 + [ids["t"]] * 5 + [ids["sil"]] * 4
    assert labels.dtype == np.int16


def test_held_out_split_is_fixed_and_keeps_equal_texts_together():
    texts = [f"prompt number {i}" for i in range(2000)]
    first = [prompts.held_out(t, 40, "english-test") for t in texts]
    assert first == [prompts.held_out(t, 40, "english-test") for t in reversed(texts)][::-1]  # order-free
    assert 0.35 < np.mean(first) < 0.45
    assert prompts.held_out("Hello  World", 40, "s") == prompts.held_out("hello world", 40, "s")
    assert not any(prompts.held_out(t, 0, "s") for t in texts) and all(prompts.held_out(t, 100, "s") for t in texts)


def test_prompt_files_in_installed_and_unpacked_layouts(tmp_path):
    sounds = tmp_path / prompts.SOUNDS
    for name in ("en_X/hello.g722", "en_X/digits/7.g722", "en_X/digits/7.wav", "es/hola.gsm", "es/digits/1.gsm",
                 "digits/es/1.gsm"):
        (sounds / name).parent.mkdir(parents=True, exist_ok=True)
        (sounds / name).write_bytes(b"")
    wideband = prompts.Voice("en_X", "en", "en-US", "p", "a", "l", "en_X")
    assert list(prompts.prompt_files(tmp_path, wideband)) == ["digits/7", "hello"]
    narrow = prompts.Voice("es_X", "es", "es-CO", "p", "a", "l", extension=".gsm", narrowband=True)
    assert sorted(prompts.prompt_files(tmp_path, narrow)) == ["digits/1", "hola"]


@needs_g722
def test_g722_decoding_keeps_the_upper_band_and_its_length(tmp_path):
    import G722

    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 5000 * t) * 32767).astype(np.int16)  # 5 kHz: only wideband audio has it
    path = tmp_path / "tone.g722"
    path.write_bytes(G722.G722(16000, 64000).encode(tone))
    audio = prompts.read_prompt(path)
    assert len(audio) == 2 * path.stat().st_size == 16000 and audio.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(audio[1000:]))
    assert abs(np.fft.rfftfreq(len(audio) - 1000, 1 / 16000)[spectrum.argmax()] - 5000) < 5
    if shutil.which("ffmpeg"):
        assert np.array_equal(prompts.decode_g722(path.read_bytes(), "ffmpeg"), prompts.decode_g722(path.read_bytes()))


def test_label_shift_and_peak():
    labels = torch.tensor([1, 2, 3, 4])
    assert check.shift_labels(labels, 1).tolist() == [-1, 1, 2, 3]
    assert check.shift_labels(labels, -2).tolist() == [3, 4, -1, -1]
    assert check.shift_labels(labels, 0).tolist() == [1, 2, 3, 4]
    assert check.peak_offset([(-1, 0.40, 0), (0, 0.50, 0), (1, 0.40, 0)]) == pytest.approx(0.0)
    assert check.peak_offset([(-1, 0.40, 0), (0, 0.50, 0), (1, 0.48, 0)]) > 0.3


def fake_voice(root, voice, prompt_texts, write_audio):
    """A package tree as Debian installs it: audio under usr/share/asterisk/sounds/<voice>/, the transcript list
    under usr/share/doc/<package>/core-sounds-<language>.txt.gz."""
    for name in prompt_texts:
        path = root / prompts.SOUNDS / voice.folder / f"{name}{voice.extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, prompt_texts[name])
    listing = root / prompts.DOCS / voice.transcripts / f"core-sounds-{voice.language}.txt.gz"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_bytes(gzip.compress(("; list\n" + "".join(f"{n}: {t}\n" for n, t in prompt_texts.items())).encode()))


def noise_wav(path, text):
    rng = np.random.default_rng(len(text))
    sf.write(path, 0.05 * rng.standard_normal(8000 + 400 * len(text)).astype(np.float32), 8000)


def test_pretraining_corpus_keeps_english_out(tmp_path, monkeypatch):
    english = prompts.Voice("en_US_f_T", "en", "en-US", "pkg-en", "A", "CC-BY-SA-3.0", "en_US_f_T", ".wav", "doc-en")
    spanish = prompts.Voice("es_MX_f_T", "es", "es-MX", "pkg-es", "B", "CC-BY-SA-3.0", "es_MX_f_T", ".wav", "doc-es")
    fake_voice(tmp_path / "root", english, {"hello": "Hello.", "bye": "Goodbye."}, noise_wav)
    texts = {f"p{i}": f"Frase numero {i}" for i in range(12)} | {"beep": "[pitido]", "silence/1": "(silencio)"}
    fake_voice(tmp_path / "root", spanish, texts, noise_wav)
    monkeypatch.setattr(prompts, "VOICES", [english, spanish])
    monkeypatch.setattr(prompts, "voice_root", lambda voice, cache, install: tmp_path / "root")
    prompts.main(["--out", str(tmp_path / "out"), "--no-english", "--no-install", "--val-percent", "30"])
    out = tmp_path / "out"
    train, val = load_utterances(str(out / "pretrain" / "train")), load_utterances(str(out / "pretrain" / "val"))
    assert len(train) + len(val) == 12 and train and val  # tones and silence left out, 8 kHz audio now 16 kHz
    assert {u.speaker for u in train + val} == {"es_MX_f_T"} and {u.sample_rate for u in train} == {16000}
    assert not (out / "english").exists() and not (out / "wav").exists()
    assert (out / "voices.tsv").read_text().splitlines()[1].split("\t")[:4] == ["es_MX_f_T", "es-MX", "pretrain", "12"]


@needs_g722
@pytest.mark.skipif(not has_sphinx, reason="pocketsphinx is not installed")
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite (Debian) is not installed to make speech")
def test_english_phone_set_end_to_end(tmp_path, monkeypatch):
    import G722

    def speech(path, text):  # flite speech, G.722-encoded like the Debian prompts
        wav = path.with_suffix(".wav")
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="int16")
        assert rate == 16000
        path.write_bytes(G722.G722(16000, 64000).encode(np.concatenate([np.zeros(3200, np.int16), audio])))
        wav.unlink()

    english = prompts.Voice("en_US_f_T", "en", "en-US", "pkg-en", "A", "CC-BY-SA-3.0", "en_US_f_T", ".g722", "doc-en")
    texts = {"vm-goodbye": "Goodbye.", "hello-world": "Hello world.", "vm-sorry": "I'm sorry.",
             "digits/7": "seven", "conf-x": "Press 9 to sit.", "demo": "dial 500 now"}
    fake_voice(tmp_path / "root", english, texts, speech)
    monkeypatch.setattr(prompts, "VOICES", [english])
    monkeypatch.setattr(prompts, "voice_root", lambda voice, cache, install: tmp_path / "root")
    prompts.main(["--out", str(tmp_path / "out"), "--no-install", "--test-percent", "50"])
    out = tmp_path / "out" / "english"
    dev, test = (out / "dev.txt").read_text().split(), (out / "test.txt").read_text().split()
    alignments = read_alignments(out / "converted_aligned_phones.txt")
    assert sorted(dev + test) == sorted(alignments) and len(alignments) == 5  # "dial 500" has no single reading
    assert "en_US_f_T_demo" in (out / "skipped.tsv").read_text()
    assert not (tmp_path / "out" / "pretrain").exists()  # English is evaluation data only
    utterances = {u.key: u for split, keys in (("dev", dev), ("test", test)) if keys
                  for u in load_utterances(str(out / split))}
    assert set(utterances) == set(alignments)
    sil, s = prompts.PHONES.index("sil"), prompts.PHONES.index("s")
    for key, u in utterances.items():
        assert u.labels.tolist() == alignments[key].tolist() and len(u.labels) == len(u.wav) // 160
        assert (u.labels[:15] == sil).all()  # the 200 ms of silence put before the speech
    seven = utterances["en_US_f_T_digits_7"].labels
    assert (seven == s).sum() >= 3 and seven[(seven != sil)][0] == s  # "seven" starts with its s
