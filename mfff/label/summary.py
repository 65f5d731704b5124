"""Per-fidelity progress and cost of a labelling job."""

from __future__ import annotations

from collections import Counter


def summarize(job) -> dict:
    """{fidelity: {method, planned, done, failed, pending, mean_cpu_s, total_cpu_s, failures{reason: n}}}."""
    out = {}
    for name, plan in job.fidelities.items():
        records = list(job.records(name).values())
        ok = [r for r in records if r["ok"]]
        cost = [r["cpu_s"] for r in records]
        planned = job.planned(name)
        out[name] = {
            "method": plan.labeller.method,
            "planned": planned,
            "done": len(ok),
            "failed": len(records) - len(ok),
            "pending": planned - len(records),
            "mean_cpu_s": sum(cost) / len(cost) if cost else 0.0,
            "total_cpu_s": sum(cost),
            "failures": dict(Counter(r["reason"] for r in records if not r["ok"])),
        }
    return out


def format_summary(summary: dict) -> str:
    header = f"{'fidelity':<10} {'done':>6} {'failed':>6} {'pending':>7} {'mean CPU s':>11} {'total CPU h':>11}  method"
    lines = [header, "-" * len(header)]
    for name, s in summary.items():
        lines.append(
            f"{name:<10} {s['done']:>6} {s['failed']:>6} {s['pending']:>7} {s['mean_cpu_s']:>11.3f} "
            f"{s['total_cpu_s'] / 3600:>11.3f}  {s['method']}"
        )
    for name, s in summary.items():
        for reason, n in s["failures"].items():
            lines.append(f"  {name}: {n} x {reason}")
    return "\n".join(lines)
