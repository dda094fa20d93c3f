"""What the end-to-end run measured, and the table it prints at the end.

``Report`` collects figures and named checks while the scenario runs; ``render`` prints the summary
table (documents ingested, faults injected, documents lost, duplicate chunks, unexpected 5xx,
p50/p95 query latency under load) and every check with its outcome. ``failed`` says whether the
run must exit non-zero: any must-be-zero figure above zero, or any failed check.
"""

from __future__ import annotations

import statistics
import threading
from collections import Counter
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    documents_uploaded: int = 0
    documents_ingested: int = 0  # completed with exactly the expected chunks and vectors
    documents_lost: int = 0
    duplicate_chunks: int = 0
    unexpected_5xx: int = 0
    expected_503: int = 0  # answered while a dependency was down on purpose
    faults: Counter[str] = field(default_factory=Counter)
    load_latencies_ms: list[float] = field(default_factory=list)
    load_requests: int = 0
    load_5xx: int = 0
    load_errors: int = 0
    load_429: int = 0
    load_seconds: float = 0.0
    load_users: int = 0
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        with self._lock:
            self.checks.append(Check(name, bool(ok), detail))
        mark = "ok  " if ok else "FAIL"
        print(f"    [{mark}] {name}{': ' + detail if detail else ''}", flush=True)
        return bool(ok)

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def count_5xx(self, n: int = 1) -> None:
        with self._lock:
            self.unexpected_5xx += n

    @property
    def failed(self) -> bool:
        return bool(self.documents_lost or self.duplicate_chunks or self.unexpected_5xx
                     or self.load_5xx or any(not c.ok for c in self.checks))

    def render(self) -> str:
        lat = self.load_latencies_ms
        faults = ", ".join(f"{k} ×{v}" for k, v in sorted(self.faults.items())) or "none"
        rows = [
            ("documents uploaded (accepted)", str(self.documents_uploaded), ""),
            ("documents ingested (verified)", str(self.documents_ingested), ""),
            ("faults injected", str(sum(self.faults.values())), faults),
            ("documents lost", str(self.documents_lost), "must be 0"),
            ("duplicate chunks", str(self.duplicate_chunks), "must be 0"),
            ("5xx count (unexpected)", str(self.unexpected_5xx + self.load_5xx), "must be 0"),
            ("503 while a store/model was down", str(self.expected_503), "clear JSON errors"),
            ("load: users × seconds", f"{self.load_users} × {self.load_seconds:.0f} s",
             f"{self.load_requests} queries, {self.load_429} × 429, {self.load_errors} errors"),
            ("query latency under load p50", f"{percentile(lat, 50):.0f} ms", ""),
            ("query latency under load p95", f"{percentile(lat, 95):.0f} ms",
             f"mean {statistics.fmean(lat):.0f} ms" if lat else ""),
            ("checks passed", f"{sum(c.ok for c in self.checks)}/{len(self.checks)}", ""),
            ("wall time", f"{self.wall_s:.0f} s", ""),
        ]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        line = "+" + "-" * (w0 + 2) + "+" + "-" * (w1 + 2) + "+" + "-" * 50 + "+"
        out = [line, f"| {'Bunko end-to-end summary'.ljust(w0)} | {''.ljust(w1)} | {''.ljust(48)} |", line]
        for a, b, c in rows:
            out.append(f"| {a.ljust(w0)} | {b.rjust(w1)} | {c[:48].ljust(48)} |")
        out.append(line)
        out.append(f"faults: {faults}")
        failed = [c for c in self.checks if not c.ok]
        if failed:
            out.append("failed checks:")
            out += [f"  - {c.name}: {c.detail[:400]}" for c in failed]
        if self.notes:
            out.append(f"notes ({len(self.notes)}, first 8):")
            out += [f"  - {n[:300]}" for n in self.notes[:8]]
        out.append("RESULT: " + ("FAIL" if self.failed else "PASS"))
        return "\n".join(out)
