#!/bin/bash
# Batch 5 of the plan (experiments/README.md): architecture (the transfer fit over PaiNN/SchNet s/m and MACE-s; SchNet
# vs PaiNN from scratch and fine-tuned) and model_size. Two lanes, one thread each; run from the repository root.
# Resumable: a rerun skips every job with a kept record (experiments/<study>/runs).
BATCH=5
source "$(dirname "$0")/lib.sh"
lane_a() {
    run architecture fit model/backbone=painn,schnet model/size=s,m data.sources.gfn2.n_train=500,1000,2000 seed=0
    run architecture seeds model/backbone=painn,schnet strategy=scratch,pretrain_finetune data.sources.dft.n_train=100,400 seed=0,1,2
}
lane_b() {
    run architecture mace model/backbone=mace data.sources.gfn2.n_train=500,1000,2000 seed=0
    run model_size all model/size=s,m,l strategy=scratch,pretrain_finetune seed=0,1,2
}
lanes
