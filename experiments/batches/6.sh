#!/bin/bash
# Batch 6 of the plan (experiments/README.md): strategies with MACE-s (its GFN2-2000 pre-training per seed, scratch,
# fine-tunes and multi-head) and partial_replacement's all-DFT reference (scratch on 1,000 DFT labels). Two lanes,
# one thread each; run from the repository root. Resumable: a rerun skips every job with a kept record
# (experiments/<study>/runs).
BATCH=6
source "$(dirname "$0")/lib.sh"
lane_a() {
    run strategies mace_s0 model/backbone=mace strategy=scratch,pretrain_finetune data.sources.dft.n_train=50,200 seed=0
    run strategies mace_s2 model/backbone=mace strategy=scratch,pretrain_finetune data.sources.dft.n_train=50,200 seed=2
    run strategies mace_mh0 model/backbone=mace strategy=multihead data.sources.dft.n_train=50 seed=0
    run partial_replacement scratch_all01 strategy=scratch data.budget.fraction=1.0 seed=0,1
}
lane_b() {
    run strategies mace_s1 model/backbone=mace strategy=scratch,pretrain_finetune data.sources.dft.n_train=50,200 seed=1
    run strategies mace_mh12 model/backbone=mace strategy=multihead data.sources.dft.n_train=50 seed=1,2
    run partial_replacement scratch_all2 strategy=scratch data.budget.fraction=1.0 seed=2
}
lanes
