#!/usr/bin/env bash
# Train the Palette models of issue 14, one per Palette task (color, inp_box, uncrop, jpeg10), on the
# built-in prior's training photos: BSDS500 train + test (400 photos; never BSDS500/val, which is
# BSD100, nor Kodak24). Same UNet and crops as the built-in prior (batch 16), so that DDRM with the
# built-in prior and Palette compare at equal network size; each model gets MINUTES of training
# (its CPU budget), one after another, one thread each.
#
#   benchmarks/train_palette.sh /work/shared/data/BSDS500 runs 30            # all four, 30 min each
#   benchmarks/train_palette.sh /work/shared/data/BSDS500 runs 60 color      # the colour model, longer
#
# PREDICTION=v_prediction trains v-prediction models instead, into RUNS/palette_v_OP.
#
# Re-running continues each run from its last checkpoint (--resume) for another MINUTES; the run
# keeps the recipe it was created with. Each run folder (RUNS/palette_OP) holds palette.json and
# holdout.csv and restores with `ddrm solve --model RUNS/palette_OP INPUT`.
set -euo pipefail
data=${1:?usage: $0 BSDS500_FOLDER RUNS_FOLDER [MINUTES] [OP...]}
runs=${2:?usage: $0 BSDS500_FOLDER RUNS_FOLDER [MINUTES] [OP...]}
minutes=${3:-30}
shift $(( $# < 3 ? $# : 3 ))
ops=("$@")
(( ${#ops[@]} )) || ops=(color inp_box uncrop jpeg10)
prediction=${PREDICTION:-epsilon}
prefix=palette_; [[ $prediction == epsilon ]] || prefix=palette_v_
for op in "${ops[@]}"; do
    OMP_NUM_THREADS=1 ddrm train --palette "$op" --prediction "$prediction" --data "$data/train" --data "$data/test" \
        -o "$runs/$prefix$op" \
        --size 64 --channels 32,64,128,128 --layers-per-block 1 --batch-size 16 --lr 5e-4 --ema 0.999 \
        --seed 0 --threads 1 --minutes "$minutes" --checkpoint-every 5 --resume --no-progress
done
