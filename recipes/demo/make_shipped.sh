#!/usr/bin/env bash
# Remake recipes/demo/cpc_shipped.pt (about 2 hours of one CPU core; the run pins itself to core ${CPU:-1}):
# 1. 600 synthetic utterances (~45 min of speech) from sentences the bundled sample never uses (--offset 110);
# 2. Debian's recorded voice prompts: non-English voices for pretraining, the English ones for evaluation only;
# 3. pretrain with recipes/demo/cpc_shipped.yaml; 4. export the weights and config of step 24,000.
set -euo pipefail
cd "$(dirname "$0")/../.."
python datasets/synthetic_speech/make_corpus.py --out data/synth_pretrain --utterances 600 --offset 110 --test-fraction 0.05
python datasets/recorded_prompts/make_shards.py --out data/prompts
OMP_NUM_THREADS=1 taskset -c "${CPU:-1}" cpc pretrain recipes/demo/cpc_shipped.yaml
python recipes/demo/export.py runs/shipped_cpc/step-00024000.pt recipes/demo/cpc_shipped.pt  # the step chosen on the dev splits
