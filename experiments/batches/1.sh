#!/bin/bash
# Batch 1 of the plan (experiments/README.md): the PaiNN-s GFN2-2000 pre-training of each seed and every fine-tune
# that needs it (strategies scratch/fine-tune, replay, finetune_mode, forces). Two lanes, one thread each; run from
# the repository root. Resumable: a rerun skips every job with a kept record (experiments/<study>/runs).
BATCH=1
source "$(dirname "$0")/lib.sh"
lane_a() {
    run strategies s0 strategy=scratch,pretrain_finetune data.sources.dft.n_train=50,100,200,400,800 seed=0
    run replay s0 'strategy@strategy.finetune=finetune,replay_finetune' seed=0
    run finetune_mode s0 strategy/params@strategy.finetune.params=full,partial,frozen_backbone strategy.finetune.head=new,reuse data.sources.dft.n_train=100,400 seed=0
    run forces s0 strategy.pretrain.use_forces=true,false data.sources.gfn2.n_train=500,2000 seed=0
    run strategies s2 strategy=scratch,pretrain_finetune data.sources.dft.n_train=50,100,200,400,800 seed=2
    run replay s2 'strategy@strategy.finetune=finetune,replay_finetune' seed=2
}
lane_b() {
    run strategies s1 strategy=scratch,pretrain_finetune data.sources.dft.n_train=50,100,200,400,800 seed=1
    run replay s1 'strategy@strategy.finetune=finetune,replay_finetune' seed=1
    run finetune_mode s1 strategy/params@strategy.finetune.params=full,partial,frozen_backbone strategy.finetune.head=new,reuse data.sources.dft.n_train=100,400 seed=1
    run forces s1 strategy.pretrain.use_forces=true,false data.sources.gfn2.n_train=500,2000 seed=1
    run forces s2 strategy.pretrain.use_forces=false,true data.sources.gfn2.n_train=500,2000 seed=2
    run finetune_mode s2 strategy/params@strategy.finetune.params=full,partial,frozen_backbone strategy.finetune.head=new,reuse data.sources.dft.n_train=100,400 seed=2
}
lanes
