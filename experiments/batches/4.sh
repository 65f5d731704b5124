#!/bin/bash
# Batch 4 of the plan (experiments/README.md): many_heads seeds 1 and 2, partial_replacement (no pre-training to
# share). Two lanes, one thread each; run from the repository root. Resumable: a rerun skips every job with a kept
# record (experiments/<study>/runs).
BATCH=4
source "$(dirname "$0")/lib.sh"
lane_a() {
    run many_heads s1 'fidelities=[dft,gfn2],[dft,gfn1,gfn2],[cc,dft,gfn1,gfn2]' seed=1
    run partial_replacement cost '~data.budget.total' '+data.budget.cost=400' data.budget.fraction=0.98,0.99,0.995 seed=0
    run partial_replacement scratch0 strategy=scratch data.budget.fraction=0.1,0.2,0.4,0.6,0.8 seed=0
    run partial_replacement epochs200_06 trainer.max_epochs=200 data.budget.fraction=0.6 seed=0,1,2
}
lane_b() {
    run many_heads s2 'fidelities=[dft,gfn2],[dft,gfn1,gfn2],[cc,dft,gfn1,gfn2]' seed=2
    run partial_replacement count data.budget.fraction=0.1,0.2,0.4,0.6,0.8 seed=0,1,2
    run partial_replacement scratch12 strategy=scratch data.budget.fraction=0.1,0.2,0.4,0.6,0.8 seed=1,2
    run partial_replacement epochs200_08 trainer.max_epochs=200 data.budget.fraction=0.8 seed=0,1,2
}
lanes
