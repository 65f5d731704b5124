# Shared by the batch scripts: `run <study> <sweep tag> <overrides...>` runs one study command (the README's, cut to
# a part) with one thread, its run dirs in multirun/<study>/<tag>, its log in multirun/batch$BATCH.<tag>.log, and a
# failure noted in multirun/batch$BATCH.failed. Kept records skip finished jobs, so a batch can be rerun.
set -u
export OMP_NUM_THREADS=1 WANDB_MODE=offline
run() {
    local study=$1 tag=$2
    shift 2
    mfff-train -m "experiment=$study" threads=1 "hydra.sweep.dir=multirun/$study/$tag" "$@" \
        >> "multirun/batch$BATCH.$tag.log" 2>&1 || echo "$study $tag failed ($?)" >> "multirun/batch$BATCH.failed"
}
# `lanes`: lane_a and lane_b side by side (two cores), then a done marker
lanes() {
    mkdir -p multirun
    lane_a & lane_b & wait
    echo "batch $BATCH done $(date -u)" >> "multirun/batch$BATCH.done"
}
