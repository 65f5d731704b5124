"""Models: backbones (per-atom features), per-fidelity heads, and the potential that combines them."""
