#!/bin/bash
# Batch 2 of the plan (experiments/README.md): the PaiNN-s multi-head jobs of strategies and many_heads (no pre-training
# to share), and different_molecules (its own GFN2-1500 pre-trainings). Two lanes, one thread each; run from
# the repository root. Resumable: a rerun skips every job with a kept record (experiments/<study>/runs).
BATCH=2
source "$(dirname "$0")/lib.sh"
lane_a() {
    run strategies mh_s0 strategy=multihead data.sources.dft.n_train=50,200,800 seed=0
    run strategies mh_s2 strategy=multihead data.sources.dft.n_train=50,200,800 seed=2
    run different_molecules s0 'data.sources.gfn2.exclude_molecules_of=[dft],[]' seed=0
    run different_molecules s2 'data.sources.gfn2.exclude_molecules_of=[dft],[]' seed=2
    run different_molecules scratch strategy=scratch seed=0,1,2
}
lane_b() {
    run strategies mh_s1 strategy=multihead data.sources.dft.n_train=50,200,800 seed=1
    run different_molecules s1 'data.sources.gfn2.exclude_molecules_of=[dft],[]' seed=1
    run many_heads scratch strategy=scratch seed=0,1,2
    run many_heads s0 'fidelities=[dft,gfn2],[dft,gfn1,gfn2],[cc,dft,gfn1,gfn2]' seed=0
}
lanes
