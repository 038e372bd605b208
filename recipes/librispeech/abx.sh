#!/usr/bin/env bash
# ABX phone discriminability, the Libri-light / ZeroSpeech 2021 protocol (the "phonetic" track) on LibriSpeech
# dev-clean and dev-other: the item files' triphone items, within context, cosine (angular) frame distance, DTW,
# 10 ms frames, groups of 10, 5 X speakers, seed 3459; error in percent, within and across speaker. Published
# (ZeroSpeech 2021 baseline CPC-big, context features): dev-clean within 3.43 / across 4.17, dev-other 4.84 / 7.59.
#
# Needs the data (no download here):
#   LIBRISPEECH/dev-clean/, LIBRISPEECH/dev-other/   LibriSpeech from openslr.org/12 (SPEAKER/CHAPTER/UTT.flac)
#   ITEMS/dev-clean.item, ITEMS/dev-other.item       the item files: Libri-light's ABX_data, or the ZeroSpeech 2021
#                                                    dataset's phonetic/ folder (same files, LibriSpeech ids)
#
#   bash recipes/librispeech/abx.sh LIBRISPEECH ITEMS CHECKPOINT_OR_RUN
#
# The same steps on the bundled synthetic sample's test split (item files made from its alignments, step 0):
#   bash recipes/librispeech/abx.sh --sample CHECKPOINT_OR_RUN
#
# Environment: LAYER (c; z for the encoder), DEVICE (auto: CUDA when present), OUT (runs/abx),
# CPC (the command, default `cpc`; e.g. "python -m cpc.cli" in a checkout).
set -euo pipefail

CPC=${CPC:-cpc}
LAYER=${LAYER:-c}
DEVICE=${DEVICE:-auto}
OUT=${OUT:-runs/abx}
mkdir -p "$OUT"

if [ "${1:-}" = "--sample" ]; then
  checkpoint=$2
  sample=datasets/synthetic_speech/sample
  sets=(sample-test sample-test-phone)
  # 0. item files from the sample's frame alignments, speakers from the shards' metadata: triphone items as
  #    Libri-light's (the span prev+phone+next, labelled by its centre; silence never a centre), and phone items
  $CPC abx items $sample/converted_aligned_phones.txt $sample/test "$OUT/sample-test.item" --unit triphone \
    --phones $sample/phones.txt
  $CPC abx items $sample/converted_aligned_phones.txt $sample/test "$OUT/sample-test-phone.item" --unit phone \
    --phones $sample/phones.txt
  # two sentences per voice in the test split: few same-context pairs, so the phone items are also scored in any
  # context (the ZeroSpeech 2021 revamp's condition, and the demo's ABX column)
  declare -A audio=([sample-test]=$sample/test [sample-test-phone]=$sample/test)
  declare -A items=([sample-test]="$OUT/sample-test.item" [sample-test-phone]="$OUT/sample-test-phone.item")
  declare -A context=([sample-test]=within [sample-test-phone]=any)
else
  root=$1 itemdir=$2 checkpoint=$3
  sets=(dev-clean dev-other)
  declare -A audio=([dev-clean]="$root/dev-clean" [dev-other]="$root/dev-other")
  declare -A items=([dev-clean]="$itemdir/dev-clean.item" [dev-other]="$itemdir/dev-other.item")
  declare -A context=([dev-clean]=within [dev-other]=within)
fi

for set in "${sets[@]}"; do
  # 1. features extracted on the fly from the audio (an audio folder is matched to the item file by file name,
  #    e.g. 1272-128104-0000) and scored within and across speaker, in the set's context mode (the protocol:
  #    within), with the model's frame shift (hop / sample rate); MFCC beside it as the usual floor to beat.
  #    The last line printed is the JSON kept in $OUT/<set>-<name>.json.
  for model in "$checkpoint" mfcc; do
    name=$(basename "${model%.pt}")
    echo "== $set: $model ($LAYER)"
    $CPC abx --model "$model" --audio "${audio[$set]}" "${items[$set]}" --layer "$LAYER" \
      --context-mode "${context[$set]}" --device "$DEVICE" --json | tee "$OUT/$set-$name.txt"
    tail -n 1 "$OUT/$set-$name.txt" > "$OUT/$set-$name.json"
  done
done
# The two-step form scores features already on disk, e.g. `cpc extract` shards (their keys are the utterance ids):
#   python datasets/librispeech/make_shards.py LIBRISPEECH/dev-clean data/dev-clean --max-seconds 60
#   cpc extract CHECKPOINT data/dev-clean runs/abx/dev-clean-features --format shards
#   cpc abx runs/abx/dev-clean-features ITEMS/dev-clean.item --context-mode within
# (--max-seconds 60 keeps every dev utterance whole; a cut utterance's pieces would not match the item file.)
echo "published (ZeroSpeech 2021 CPC-big, within context): dev-clean within 3.43 across 4.17; dev-other 4.84 / 7.59"
