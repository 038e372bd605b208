#!/usr/bin/env bash
# The real-speech ablation (docs/ablations.md, "Real recorded speech"): each row one change from the recipe
# shipped until 2026-12-06 (recipes/ablations/base.yaml), trained for the learning benchmark's short budget
# (3,000 steps, bf16, one core) and scored on the English dev split (phone probe +-1 frame, ABX within). Rows run one after another on
# core ${CPU:-0}; results go to ${RESULTS:-runs/bench/results.jsonl}. Run a subset by naming rows: ./real_speech.sh r0 r3
# Needs: datasets/synthetic_speech/make_corpus.py --out data/synth_pretrain --utterances 600 --offset 110
# --test-fraction 0.05; datasets/recorded_prompts/make_shards.py --out data/prompts; datasets/amazon_queen and
# datasets/steel_sky make_shards.py --out data/<name>.
set -euo pipefail
cd "$(dirname "$0")/../.."
CPU=${CPU:-0}
RESULTS=${RESULTS:-runs/bench/results.jsonl}
MIX='data.mix=[data/synth_pretrain/train=1,data/prompts/pretrain/train=1]'
GAMES='data.mix=[data/synth_pretrain/train=1,data/prompts/pretrain/train=1,data/amazon_queen/train=1,data/steel_sky/train=1]'
REAL='data.mix=[data/prompts/pretrain/train=1,data/amazon_queen/train=1,data/steel_sky/train=1]'
R2_3000=${R2_3000:-runs/shipped_cpc/step-00003000.pt}  # step 3,000 of recipes/demo/cpc_shipped.yaml's run
PYTHON=${PYTHON:-.venv/bin/python}
EVERY="--set train.checkpoint_every=750 --set train.keep_checkpoints=4"
learn() { taskset -c "$CPU" "$PYTHON" tools/bench_learning.py run recipes/ablations/base.yaml --cpu "$CPU" \
            --results "$RESULTS" "$@"; }
bench() { learn --mode short "$@"; }
row() {
  case $1 in
    random) learn --random-init --name "random init, shipped architecture" --layers c z c+mfcc ;;
    # r0, r1 and r3 keep a checkpoint every 750 steps: scored at 750 and 3,000 they check that a 4x shorter
    # budget ranks them as the 4x longer one does (docs/ablations.md, "short against long").
    r0) bench --name "shipped recipe: synthetic only, batch negatives" --layers c z c+mfcc $EVERY \
          --out runs/bench/r0 ;;
    r1) bench --name "+ same_sequence negatives" --set cpc.infonce.policy=same_sequence --layers c z c+mfcc $EVERY \
          --out runs/bench/r1 ;;
    r2) echo "r2 (synthetic + prompts 1:1, same_sequence) is step 3000 of the long run: runs/exp/eval_long.sh 3000" ;;
    r3) bench --name "r2 + bidirectional" --set "$MIX" --set cpc.infonce.policy=same_sequence \
          --set cpc.model.bidirectional=true --layers c z c_bidir c_bidir+mfcc $EVERY --out runs/bench/r3 ;;
    r4) bench --name "r2 + log-mel front end" --set "$MIX" --set cpc.infonce.policy=same_sequence \
          --set cpc_preset=logmel --layers c z c+mfcc ;;
    r5) bench --name "r2 + English game dialogue (1:1:1:1)" --set "$GAMES" --set cpc.infonce.policy=same_sequence \
          --layers c z c+mfcc ;;
    r6) bench --name "synthetic + prompts, batch negatives, batches by source" --set "$MIX" --set data.group=source \
          --layers c z c+mfcc ;;
    r7) bench --name "r2 + log-mel regression (APC-style L1) beside InfoNCE" --set "$MIX" \
          --set cpc.infonce.policy=same_sequence --set cpc.model.regression_target=logmel \
          --set cpc.regression_loss=l1 --layers c z c+mfcc ;;
    r2s1) bench --name "r2, second seed" --seed 1 --set "$MIX" --set cpc.infonce.policy=same_sequence \
          --layers c z c+mfcc ;;
    r8) bench --name "r2 + K = 8 prediction steps" --set "$MIX" --set cpc.infonce.policy=same_sequence \
          --set cpc.model.predictor.steps=8 --layers c z c+mfcc ;;
    r9) bench --name "r2 + augmentation of the past (pitch, noise, reverberation)" --set "$MIX" \
          --set cpc.infonce.policy=same_sequence --set data.augment.past=true --layers c z c+mfcc ;;
    r7b) bench --name "r2 + log-mel L1 regression at weight 0.1" --set "$MIX" \
          --set cpc.infonce.policy=same_sequence --set cpc.model.regression_target=logmel \
          --set cpc.regression_loss=l1 --set cpc.regression_weight=0.1 --layers c z c+mfcc ;;
    r10) bench --name "r2 with same_speaker negatives" --set "$MIX" --set cpc.infonce.policy=same_speaker \
          --layers c z c+mfcc ;;
    r11) bench --name "r2 + learning rate 1e-3" --set "$MIX" --set cpc.infonce.policy=same_sequence \
          --set optim.lr=1.0e-3 --layers c z c+mfcc ;;
    r12) bench --name "real recordings only: prompts + 2 games 1:1:1, same_sequence" --set "$REAL" \
          --set cpc.infonce.policy=same_sequence --layers c z c+mfcc ;;
    # From r2's step-3,000 checkpoint (past chance), 3,000 more steps: r9b augments the past, r7c adds the regression
    # head, r2c is their control.
    r2c) bench --name "r2 continued from its step 3,000 (control of r9b)" --set "$MIX" \
          --set cpc.infonce.policy=same_sequence --set train.init_from=$R2_3000 --layers c z c+mfcc ;;
    r9b) bench --name "r2 continued from its step 3,000 + past augmentation" --set "$MIX" \
          --set cpc.infonce.policy=same_sequence --set train.init_from=$R2_3000 --set data.augment.past=true \
          --layers c z c+mfcc ;;
    r7c) bench --name "r2 continued from its step 3,000 + log-mel L1 regression (weight 0.1, a new head)" \
          --set "$MIX" --set cpc.infonce.policy=same_sequence --set train.init_from=$R2_3000 \
          --set cpc.model.regression_target=logmel --set cpc.regression_loss=l1 --set cpc.regression_weight=0.1 \
          --layers c z c+mfcc ;;
    r13) bench --name "r2 + a wider g_ar (GRU 512)" --set "$MIX" --set cpc.infonce.policy=same_sequence \
          --set cpc.model.ar.dim=512 --layers c z c+mfcc ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(random r0 r1 r3 r4 r5 r6 r7 r2s1 r8 r9)
for name in "${rows[@]}"; do row "$name"; done
