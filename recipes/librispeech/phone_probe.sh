#!/usr/bin/env bash
# The CPC paper's phone-probe protocol (Oord et al. 2018; CPC_audio's release of the alignments) on LibriSpeech
# train-clean-100: 41 phone classes, one label per 10 ms frame, a linear classifier on frozen context features,
# trained on the train split and scored once on the test split. Published: CPC 64.6 % frame accuracy, MFCC 39.7 %
# (one hidden layer: 72.5 %); speakers (251) 97.4 %.
#
# Needs the data (no download here):
#   LibriSpeech/train-clean-100/       from openslr.org/12
#   converted_aligned_phones.txt, train_split.txt, test_split.txt  from the CPC_audio release (100 h alignments)
#
#   bash recipes/librispeech/phone_probe.sh LibriSpeech/train-clean-100 ALIGNMENTS_DIR CHECKPOINT_OR_RUN
#
# The same steps on the bundled synthetic corpus (40 classes) need no download:
#   bash recipes/librispeech/phone_probe.sh --synthetic runs/demo_cpc
set -euo pipefail

if [ "${1:-}" = "--synthetic" ]; then
  shards=datasets/synthetic_speech/sample
  checkpoint=$2
  classes=40
else
  root=$1 alignments=$2 checkpoint=$3
  shards=data/ls100_probe
  classes=41
  # 1. shards with frame labels, one set per split (speaker = the top folder of each utterance)
  python datasets/librispeech/make_shards.py "$root" "$shards" \
    --alignments "$alignments/converted_aligned_phones.txt" \
    --split train="$alignments/train_split.txt" --split test="$alignments/test_split.txt"
fi

# 2. phone probe: the checkpoint's context features against MFCC, log-mel and a random-init encoder, same probe
cpc probe phones --train "$shards/train" --test "$shards/test" --classes "$classes" \
  --features "$checkpoint" --features mfcc --features logmel --features random:paper --out runs/phone_probe
# one hidden layer, as in the paper's second row
cpc probe phones --train "$shards/train" --test "$shards/test" --classes "$classes" --hidden 512 \
  --features "$checkpoint" --out runs/phone_probe_mlp
# 3. speaker probe on mean-pooled features
cpc probe speakers --train "$shards/train" --test "$shards/test" --epochs 200 --batch-size 16 --lr 1e-2 \
  --features "$checkpoint" --features mfcc --out runs/speaker_probe
