#!/bin/bash
# The representation study (experiments/representations/README.md): train the six backbones it compares, then linear
# CKA of their per-atom features on DFT test structures, then results.md. Run from the repository root (one thread;
# about 40 CPU minutes). Single runs, not sweeps: their checkpoints are needed, so kept records do not skip them.
set -eu
export OMP_NUM_THREADS=1 WANDB_MODE=offline
D=${MFFF_REPRESENTATIONS_RUNS:-multirun/representations}
OUT=${MFFF_REPRESENTATIONS_DIR:-experiments/representations}   # holds study.yaml; gets analysis/ and results.md
read -ra extra <<< "${MFFF_EXTRA:-}"   # smoke tests: e.g. "debug=quick trainer.max_epochs=1" for the trainings,
read -ra analyze_extra <<< "${MFFF_ANALYZE_EXTRA:-}"   # and "similarity.structures=16" for the analysis
common=(threads=1 paths.records_dir=null "${extra[@]}")
mfff-train experiment=strategies strategy=pretrain_finetune seed=0 "${common[@]}" hydra.run.dir=$D/gfn2_s0
mfff-train experiment=strategies strategy=pretrain_finetune seed=1 "${common[@]}" hydra.run.dir=$D/gfn2_s1
mfff-train experiment=pretrain_size 'strategy.pretrain.fidelities=[gfn1]' data.sources.gfn1.n_train=2000 seed=0 \
    "${common[@]}" hydra.run.dir=$D/gfn1_s0
mfff-train experiment=strategies strategy=scratch seed=0 "${common[@]}" hydra.run.dir=$D/dft_s0
mfff-train experiment=strategies strategy=multihead seed=0 "${common[@]}" hydra.run.dir=$D/multihead_s0
mfff-analyze runs=$D hydra.run.dir=$OUT/analysis similarity.fidelity=dft "${analyze_extra[@]}" \
    "similarity.checkpoints=['$D/gfn2_s0:pretrain','$D/gfn2_s1:pretrain','$D/gfn1_s0:pretrain',$D/gfn2_s0,$D/dft_s0,$D/multihead_s0]" \
    'similarity.names=[gfn2_s0,gfn2_s1,gfn1_s0,finetuned_s0,dft_s0,multihead_s0]'
mfff-analyze study=$OUT
