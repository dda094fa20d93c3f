"""API load: p50/p95 latency and requests/s of cached queries and of ``/health``.

Starts a real ``uvicorn`` serving ``bunko.api.main:create_app`` on loopback (embedded default, its
own data directory, an in-process worker), ingests the born-digital sample, asks once to fill the
query cache, then drives each endpoint with C concurrent keep-alive connections for D seconds.
Load generator: ``wrk`` (Debian package ``wrk``) when it is installed — it is written in C and leaves
most of the CPU to the server — else an async httpx client (``--tool httpx`` forces it). Every
non-2xx answer or transport error counts as an error.

The load generator runs on the same machine as the server, so the figures are a floor for the
server alone.

    python bench/api.py [--duration 30] [--concurrency 50] [--workers 1] [--tool auto|wrk|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bunko.samples import make_born_digital
from bunko.testing.servers import free_port, stop_process

console = Console()
ADMIN, PASSWORD = "bench-admin", "bench-password-123"
QUESTION = "文庫は何をする仕組みですか"


@dataclass
class Result:
    name: str
    tool: str = "httpx"
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    # Filled by wrk, which reports its own percentiles (milliseconds) and count.
    summary: dict[str, float] | None = None

    def row(self) -> list[str]:
        if self.summary is not None:
            s = self.summary
            return [self.name, self.tool, f"{s['requests']:.0f}", f"{s['requests'] / self.elapsed:.0f}",
                    f"{s['p50']:.1f}", f"{s['p95']:.1f}", f"{s['p99']:.1f}", f"{s['mean']:.1f}",
                    str(self.errors)]
        lat = sorted(self.latencies)
        n = len(lat)

        def q(p: float) -> str:
            return f"{lat[min(n - 1, int(p * n))] * 1000:.1f}" if n else "-"

        return [self.name, self.tool, str(n), f"{n / self.elapsed:.0f}" if self.elapsed else "-",
                q(0.5), q(0.95), q(0.99), f"{statistics.fmean(lat) * 1000:.1f}" if n else "-",
                str(self.errors)]


WRK_SCRIPT = """
wrk.method = %(method)s
wrk.body = %(body)s
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BUNKO-RESULT {"requests":%%d,"duration_us":%%d,"p50":%%.3f,"p95":%%.3f,'
    .. '"p99":%%.3f,"mean":%%.3f,"transport_errors":%%d,"non2xx":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000, e.connect + e.read + e.write + e.timeout,
    e.status))
end
"""


def _lua(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid Lua string literal here


def drive_wrk(base: str, name: str, method: str, path: str, *, json_body: Any = None,
              headers: dict[str, str] | None = None, duration: float, concurrency: int,
              work: Path) -> Result:
    all_headers = dict(headers or {})
    body = ""
    if json_body is not None:
        body = json.dumps(json_body, ensure_ascii=False)
        all_headers["Content-Type"] = "application/json"
    script = work / f"wrk-{abs(hash(name))}.lua"
    script.write_text(WRK_SCRIPT % {
        "method": _lua(method), "body": _lua(body),
        "headers": "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in all_headers.items()),
    })
    threads = max(1, min(2, (os.cpu_count() or 2) // 2))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration:.0f}s", "--timeout", "30s",
         "-s", str(script), base + path], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BUNKO-RESULT "))
    summary = json.loads(line.split(" ", 1)[1])
    result = Result(name, tool="wrk", summary=summary, elapsed=summary["duration_us"] / 1e6)
    result.errors = int(summary["transport_errors"] + summary["non2xx"])
    return result


def start_server(data_dir: Path, port: int, workers: int, *, database_url: str = "",
                 cache_url: str = "") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
    if database_url:
        env["BUNKO_DATABASE_URL"] = database_url
    if cache_url:
        env["BUNKO_CACHE_URL"] = cache_url
    env.update({
        "BUNKO_DATA_DIR": str(data_dir), "BUNKO_BOOTSTRAP_ADMIN_USERNAME": ADMIN,
        "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD, "BUNKO_RATE_LIMIT_PER_MINUTE": "100000000",
        "BUNKO_API_START_WORKER": "1", "BUNKO_WORKER_POLL_S": "0.2",
    })
    cmd = [sys.executable, "-m", "uvicorn", "bunko.api.main:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
           "--log-level", "warning"]
    log = (data_dir / "server.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not come up")


def prepare(base: str, work: Path) -> dict[str, str]:
    """Log in, ingest the sample, wait for it, and fill the query cache."""
    with httpx.Client(base_url=base, timeout=300) as c:
        tok = c.post("/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {tok['access_token']}"}
        pdf = make_born_digital(work / "sample.pdf")
        r = c.post("/api/v1/collections/default/documents", headers=headers,
                   files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")})
        r.raise_for_status()
        doc_id = r.json()["id"]
        deadline = time.monotonic() + 300
        while c.get(f"/api/v1/documents/{doc_id}", headers=headers).json()["status"] != "completed":
            if time.monotonic() > deadline:
                raise SystemExit("the sample was not ingested in 5 minutes")
            time.sleep(0.5)
        first = c.post("/api/v1/query", headers=headers, json={"question": QUESTION}).json()
        second = c.post("/api/v1/query", headers=headers, json={"question": QUESTION}).json()
        if not second.get("cached"):
            raise SystemExit(f"the repeated question was not answered from the cache: {second}")
        console.print(f"warm-up: first answer {first['processing_time_ms']:.0f} ms "
                      f"({first['mode']}), cached {second['processing_time_ms']:.1f} ms")
        return headers


async def drive(base: str, name: str, method: str, path: str, *, json_body: Any = None,
                headers: dict[str, str] | None = None, duration: float, concurrency: int) -> Result:
    result = Result(name)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, headers=headers) as client:
        stop_at = time.perf_counter() + duration

        async def one_connection() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, path, json=json_body)
                    ok = 200 <= r.status_code < 300
                    result.statuses[r.status_code] = result.statuses.get(r.status_code, 0) + 1
                except httpx.HTTPError:
                    ok = False
                if ok:
                    result.latencies.append(time.perf_counter() - t0)
                else:
                    result.errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - start
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--tool", choices=["auto", "wrk", "httpx"], default="auto")
    ap.add_argument("--database-url", default="", help="e.g. postgresql+psycopg://postgres@127.0.0.1/bench "
                    "(an empty database; default: SQLite in a temp dir)")
    ap.add_argument("--cache-url", default="", help="e.g. redis://127.0.0.1:6379/14 (default: in-process)")
    args = ap.parse_args()
    use_wrk = args.tool == "wrk" or (args.tool == "auto" and shutil.which("wrk") is not None)

    with tempfile.TemporaryDirectory(prefix="bunko-bench-api-") as tmp:
        work = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        data_dir = work / "data"
        data_dir.mkdir()
        proc = start_server(data_dir, port, args.workers, database_url=args.database_url,
                            cache_url=args.cache_url)
        try:
            wait_ready(base, proc)
            headers = prepare(base, work)
            runs: list[tuple[str, str, str, dict[str, Any]]] = [
                ("GET /health", "GET", "/health", {}),
                ("POST /api/v1/query (cached)", "POST", "/api/v1/query",
                 {"json_body": {"question": QUESTION}, "headers": headers}),
            ]
            results = []
            for name, method, path, extra in runs:
                if use_wrk:
                    results.append(drive_wrk(base, name, method, path, duration=args.duration,
                                             concurrency=args.concurrency, work=work, **extra))
                else:
                    results.append(asyncio.run(drive(base, name, method, path, duration=args.duration,
                                                     concurrency=args.concurrency, **extra)))
        finally:
            stop_process(proc, grace_s=30)

    stores = f"{'PostgreSQL' if args.database_url else 'SQLite'} + {'Redis' if args.cache_url else 'memory'}"
    table = Table(title=f"{args.concurrency} connections × {args.duration:.0f} s, loopback, "
                        f"{args.workers} uvicorn worker(s), {os.cpu_count()} CPUs, {stores}")
    for col in ("endpoint", "tool", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "mean ms", "errors"):
        table.add_column(col, justify="right" if col != "endpoint" else "left")
    for r in results:
        table.add_row(*r.row())
    console.print(table)
    for r in results:
        if r.statuses:
            console.print(f"{r.name}: statuses {r.statuses}")
    if any(r.errors for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
