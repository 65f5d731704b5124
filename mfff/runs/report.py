"""What a user reads at the end of a run or an evaluation: the test errors per fidelity, with units, and where
the files are."""

from __future__ import annotations

from pathlib import Path

from mfff.records import RunRecord

UNITS = {"energy": "meV", "energy_per_atom": "meV/atom", "forces": "meV/Å"}
COLUMNS = (  # (metric, header)
    ("energy_mae", "energy MAE [meV]"),
    ("energy_per_atom_mae", "energy/atom MAE [meV/atom]"),
    ("forces_mae", "forces MAE [meV/Å]"),
    ("forces_rmse", "forces RMSE [meV/Å]"),
)
NOT_TEST = ("train", "val")


def metrics_table(metrics: dict) -> str:
    """One row per test set and fidelity ('-' where a fidelity has no such label, e.g. CCSD(T) forces)."""
    rows = [
        [stage, fidelity, *(f"{values[m]:.1f}" if m in values else "-" for m, _ in COLUMNS)]
        for stage, per_fidelity in sorted(metrics.items())
        if stage not in NOT_TEST
        for fidelity, values in sorted(per_fidelity.items())
        if fidelity != "_all"
    ]
    if not rows:
        return "  (no test metrics)"
    header = ["test set", "fidelity", *(h for _, h in COLUMNS)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [header, *rows]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in lines
    )


def format_summary(record: RunRecord, metrics_file: Path) -> str:
    heading = (
        f"mfff-train finished: {record.strategy['name']}, {record.backbone}/{record.size}, {record.epochs} epochs, "
        f"{record.steps} steps ({record.stopped}). Test errors of the best checkpoint (epoch {record.best_epoch}):"
    )
    return "\n".join(
        [
            heading,
            metrics_table(record.metrics),
            f"metrics:    {metrics_file}",
            f"checkpoint: {record.best_checkpoint}",
        ]
    )
