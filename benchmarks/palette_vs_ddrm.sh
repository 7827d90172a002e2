#!/usr/bin/env bash
# DDRM with the built-in prior next to the Palette models of benchmarks/train_palette.sh, on Palette's
# four tasks, with `ddrm bench` (same observations, seeds and baselines for both methods).
#
#   benchmarks/palette_vs_ddrm.sh DATA NAME RUNS OUT CROP LIMIT [PALETTE_STEPS] [OP...]
#   benchmarks/palette_vs_ddrm.sh ../shared/data/Kodak24 Kodak24 runs results/palette 64 24 100
#
# writes OUT/NAME-CROP/{ddrm,palette}-OP/ (summary.json, summary.md, per_image.csv, grid.png); then
# `python benchmarks/palette_table.py OUT` prints the table. One thread per process.
# PALETTE=palette_v benches the models RUNS/palette_v_OP instead (into palette_v-OP/), and
# DDRM=no skips the DDRM runs.
set -euo pipefail
usage="usage: $0 DATA NAME RUNS OUT CROP LIMIT [PALETTE_STEPS] [OP...]"
data=${1:?$usage}; name=${2:?$usage}; runs=${3:?$usage}; out=${4:?$usage}; crop=${5:?$usage}; limit=${6:?$usage}
steps=${7:-100}
shift $(( $# < 7 ? $# : 7 ))
ops=("$@")
(( ${#ops[@]} )) || ops=(color inp_box uncrop jpeg10)
export OMP_NUM_THREADS=1
palette=${PALETTE:-palette}
for op in "${ops[@]}"; do
    dir="$out/$name-$crop"
    if [[ ${DDRM:-yes} != no ]]; then
        ddrm bench --op "$op" --data "$data" --crop "$crop" --limit "$limit" --no-progress --overwrite \
            -o "$dir/ddrm-$op"
        if [[ $op == color ]]; then  # DDRM's colour cast with this prior: the clipped variant too
            ddrm bench --op "$op" --clip-denoised --data "$data" --crop "$crop" --limit "$limit" --no-progress \
                --overwrite -o "$dir/ddrm_clip-$op"
        fi
    fi
    ddrm bench --method palette --model "$runs/${palette}_$op" --data "$data" --crop "$crop" --limit "$limit" \
        --steps "$steps" --no-progress --overwrite -o "$dir/$palette-$op"
done
