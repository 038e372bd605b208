#!/usr/bin/env bash
# Remake recipes/demo/cpc_shipped.pt: about 3 hours of one core (3 of the 4 core-hours of 2 hours on this
# machine's 2 cores; the stages follow one another), every run pinned to core ${CPU:-1}:
# 1. 600 synthetic utterances (~45 min of speech) from sentences the bundled sample never uses (--offset 110);
# 2. Debian's recorded voice prompts: non-English voices for pretraining, the English ones for evaluation only;
# 3. stage 1: recipes/demo/cpc_shipped.yaml, 24,000 steps (about 2 hours);
# 4. stage 2: from its step 24,000, the reverse g_ar added (cpc.model.bidirectional, new modules) and both
#    directions trained 6,000 steps with a cosine decay (about 45 minutes);
# 5. stage 3: from stage 2's last step, the past augmented (pitch, additive noise, reverberation on the input of
#    c, clean targets) for 2,000 steps (about 20 minutes);
# 6. export stage 3's last step (each stage's step chosen on the dev splits, docs/ablations.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
python datasets/synthetic_speech/make_corpus.py --out data/synth_pretrain --utterances 600 --offset 110 --test-fraction 0.05
python datasets/recorded_prompts/make_shards.py --out data/prompts
pretrain() { OMP_NUM_THREADS=1 taskset -c "${CPU:-1}" cpc pretrain recipes/demo/cpc_shipped.yaml "$@"; }
pretrain
pretrain --set train.init_from=runs/shipped_cpc/step-00024000.pt --set cpc.model.bidirectional=true \
  --set optim.schedule=cosine --set train.steps=6000 --set train.out=runs/shipped_cpc_bidir \
  --set train.checkpoint_every=1500 --set train.validate_every=1500
pretrain --set train.init_from=runs/shipped_cpc_bidir/step-00006000.pt --set cpc.model.bidirectional=true \
  --set data.augment.past=true --set train.steps=2000 --set train.out=runs/shipped_cpc_augmented \
  --set train.checkpoint_every=1000 --set train.validate_every=1000
python recipes/demo/export.py runs/shipped_cpc_augmented/step-00002000.pt recipes/demo/cpc_shipped.pt
