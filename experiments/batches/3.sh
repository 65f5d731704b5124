#!/bin/bash
# Batch 3 of the plan (experiments/README.md): pretrain_size, GFN2-xTB 250 to 7,938 and GFN1-xTB 500 and 2,000 (each
# pre-training with its one fine-tune), and the representation study (CKA of six backbones). Two lanes, one thread
# each; run from the repository root. Resumable: a rerun skips every job with a kept record (experiments/<study>/runs).
BATCH=3
source "$(dirname "$0")/lib.sh"
lane_a() {
    run pretrain_size s0 data.sources.gfn2.n_train=250,500,1000,2000,4000,7888 seed=0
    run pretrain_size s2_big data.sources.gfn2.n_train=7888 seed=2
    run pretrain_size gfn1_s0 'strategy.pretrain.fidelities=[gfn1]' data.sources.gfn1.n_train=500,2000 seed=0
    bash experiments/representations/run.sh >> multirun/batch3.representations.log 2>&1 \
        || echo "representations failed ($?)" >> multirun/batch3.failed
}
lane_b() {
    run pretrain_size s1 data.sources.gfn2.n_train=250,500,1000,2000,4000,7888 seed=1
    run pretrain_size s2 data.sources.gfn2.n_train=250,500,1000,2000,4000 seed=2
    run pretrain_size gfn1_s12 'strategy.pretrain.fidelities=[gfn1]' data.sources.gfn1.n_train=500,2000 seed=1,2
}
lanes
