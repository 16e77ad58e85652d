"""Shared fleet benchmark: several connector processes split one demo fleet; one is killed mid-run.

Starts a throwaway durable Postgres, the demo fleet (``--hosts`` simulated llama-swap instances in
``--fleet-procs`` processes) and ``--connectors`` `boocontrol connect` processes on the same registry and
database. They split the providers through the follow leases. After a warm-up and a "before" window, one
connector is killed with SIGKILL; the script measures how long until every provider it held is followed again
(lease taken by a survivor, then a fresh ``connected`` health row), then an "after" window. Reported:

* event -> row lag p50/p95/p99 in each window: the commit time of the transaction that made the row visible in
  Postgres (``pg_xact_commit_timestamp``; the bench's cluster runs with ``track_commit_timestamp = on``) minus
  the request's finish time on the host. Hosts report finish times truncated to whole seconds, so the figure is
  an upper bound of the true lag (targets are judged on it) and the same minus 1 s a lower bound; both printed.
  Rows of the moved providers that finished while nobody followed them are reported separately (their lag is
  the takeover time by construction); beside each window's figure, the lag per 10 s of commit time for the killed
  connector's providers and for the others, over the same rows (where in the window a rise is, and whose);
* the split before and after, CPU and peak RSS of each connector, CPU of the demo fleet, the load average;
* rows lost or doubled against what the hosts hold: every activity row each host reports is in Postgres,
  each SSE activity message is stored at most once, and each host's stored proxy log is exactly its own log
  (everything it had logged before the check, nothing it did not log).

By default the survivors wait for the dead connector's leases to expire (as on another machine);
``--local-take-over`` lets them see that the process is gone and take over at once.

The demo fleet stands in for the fleet's own machines: it runs at ``--demo-nice`` (10 by default) so that on a
machine this small it does not starve the connectors and Postgres, which run at normal priority with the same
settings as a real deployment. ``--demo-nice 0`` runs everything at one priority.

    .venv/bin/python bench/bench_shared_fleet.py [--hosts 1500] [--connectors 3] [--rpm 2] [--before 60] [--after 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402

# Lag of a row: when the transaction that made it visible committed (``track_commit_timestamp`` is on in the bench's
# cluster) minus its finish time upstream. Finish times are whole seconds (truncated), so this is an upper bound of
# the true lag (the figure targets are judged on); the same minus 1 s is a lower bound.
LAG_SQL = ("SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM c - f)), "
           "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM c - f) - 1) "
           "FROM (SELECT pg_xact_commit_timestamp(xmin) AS c, finished_at AS f, provider_id FROM activity) a "
           "WHERE c BETWEEN %s AND %s")


# Where in a window the lag is (a diagnostic beside the figure, over the same rows): per 10 s of commit time, the
# count and lag p50/p95/max of the moved providers' rows and of the others'.
TIMELINE_SQL = ("SELECT floor(extract(epoch FROM c - %s) / 10)::int AS b, provider_id = ANY(%s) AS moved, count(*), "
                "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM c - f)), "
                "max(extract(epoch FROM c - f)) "
                "FROM (SELECT pg_xact_commit_timestamp(xmin) AS c, finished_at AS f, provider_id FROM activity) a "
                "WHERE c BETWEEN %s AND %s AND f > %s GROUP BY 1, 2 ORDER BY 1, 2")


def timeline(db: psycopg.Connection[Any], t0: Any, t1: Any, after: Any, moved: list[str]) -> list[str]:
    out = []
    for b, is_moved, n, p, mx in db.execute(TIMELINE_SQL, (t0, moved, t0, t1, after)).fetchall():
        out.append(f"    +{b * 10:3d}-{b * 10 + 10:3d} s {'moved ' if is_moved else 'others'}: {n:5d} rows, lag p50 "
                   f"{p[0]:.2f} s, p95 {p[1]:.2f} s, max {float(mx):.2f} s")
    return out


def lag_line(row: tuple[Any, ...] | None) -> str:
    if row is None or not row[0]:
        return "no rows"
    p, lo = row[1], row[2]
    return (f"p50 {p[0]:.2f} s, p95 {p[1]:.2f} s, p99 {p[2]:.2f} s over {row[0]} rows (finish times are whole "
            f"seconds: true p50/p95 between {lo[0]:.2f}/{lo[1]:.2f} s and these)")


def start_cluster(data_dir: Path) -> EmbeddedCluster:
    """A throwaway cluster on a free port, with ``track_commit_timestamp = on`` (when each row became visible)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = EmbeddedCluster(data_dir, port)
    cluster.init()
    with open(cluster.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("track_commit_timestamp = on\n")
    cluster.start()
    return cluster


def split(db: psycopg.Connection[Any]) -> dict[str, int]:
    rows = db.execute("SELECT holder, count(*) FROM leases WHERE scope='follow' AND expires_at > now() "
                      "GROUP BY holder ORDER BY holder").fetchall()
    return {h: n for h, n in rows}


def stop_all(procs: Iterable[subprocess.Popen[Any] | None], cluster: Any, base: Path) -> None:
    """End a bench: every process asked to stop at once, then waited for (killed after 30 s), then the cluster."""
    running = [p for p in procs if p is not None]
    for proc in running:
        if proc.poll() is None:
            proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    cluster.stop()
    print(f"(logs in {base})")


def free_block(n: int) -> int:
    """A first port of ``n`` consecutive free loopback ports below the ephemeral range."""
    for first in range(20000, 32768 - n, 500):
        socks = []
        try:
            for port in range(first, first + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit(f"no block of {n} free ports")


def holder_pid(holder: str) -> int:
    return int(holder.split("@", 1)[1].rsplit(":", 2)[1])


def fetch_host(url: str) -> tuple[list[int], str]:
    """Every activity id the host holds and its proxy log (a starved demo process may answer slowly: retried)."""
    for attempt in range(3):
        try:
            return _fetch_host(url)
        except httpx.TimeoutException:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _fetch_host(url: str) -> tuple[list[int], str]:
    with httpx.Client(timeout=120) as c:
        ids: list[int] = []
        page = 1
        while True:
            body = c.get(url + "/api/metrics/activity", params={"sort": "id", "order": "asc", "limit": 999,
                                                                "page": page}).json()
            ids.extend(int(r["id"]) for r in body.get("data") or [])
            if page >= int(body.get("total_pages") or 0):
                break
            page += 1
        return ids, c.get(url + "/logs").text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1500)
    ap.add_argument("--fleet-procs", type=int, default=3, help="demo fleet processes (hosts split between them)")
    ap.add_argument("--connectors", type=int, default=3)
    ap.add_argument("--rpm", type=float, default=2.0, help="requests per minute per host")
    ap.add_argument("--warmup", type=int, default=45, help="seconds after every provider is connected")
    ap.add_argument("--before", type=int, default=60)
    ap.add_argument("--after", type=int, default=60)
    ap.add_argument("--lease-seconds", type=float, default=15.0)
    ap.add_argument("--local-take-over", action="store_true")
    ap.add_argument("--demo-nice", type=int, default=10,
                    help="nice level of the demo fleet processes: they stand in for the fleet's own machines, so they "
                         "run at a lower CPU priority than the connectors and Postgres sharing this one (0: as before)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    base = Path(tempfile.mkdtemp(prefix="bench-shared-"))
    cluster = start_cluster(base / "pg")
    url = cluster.url()
    upgrade(url)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": url, "BOOCONTROL_LOG_LEVEL": "INFO",
           "BOOCONTROL_CONNECTOR_LEASE_SECONDS": str(args.lease_seconds),
           "BOOCONTROL_CONNECTOR_TAKE_OVER_LOCAL_DEAD": "true" if args.local_take_over else "false"}
    py = sys.executable
    per = -(-args.hosts // args.fleet_procs)
    base_port = free_block(args.hosts)
    chunks = [(i * per, min(per, args.hosts - i * per)) for i in range(args.fleet_procs) if args.hosts > i * per]
    urls = [f"http://127.0.0.1:{base_port + i}" for i in range(args.hosts)]
    ids = [f"demo-{i + 1:04d}" for i in range(args.hosts)]
    reg = base / "fleet.yaml"
    reg.write_text(yaml.safe_dump({"providers": [{"id": p, "label": p, "base_url": u, "kind": "llama-swap"}
                                                 for p, u in zip(ids, urls, strict=True)]}))
    procs: list[subprocess.Popen[bytes]] = []
    connectors: list[subprocess.Popen[bytes]] = []
    try:
        for k, (start, n) in enumerate(chunks):
            procs.append(subprocess.Popen(
                [py, "-m", "cli.main", "demo-fleet", "-n", str(n), "--base-port", str(base_port + start),
                 "--rpm", str(args.rpm), "--seed", str(k)],
                cwd=ROOT, env={**env, "BOOCONTROL_DATA_DIR": str(base / f"fleet{k}")},
                stdout=subprocess.DEVNULL, stderr=open(base / f"fleet{k}.err", "wb"),
                preexec_fn=(lambda: os.nice(args.demo_nice)) if args.demo_nice else None))
        for start, n in chunks:
            last = urls[start + n - 1]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    if httpx.get(last + "/wol-health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
        t_start = time.monotonic()
        for k in range(args.connectors):
            connectors.append(subprocess.Popen(
                [py, "-m", "cli.main", "--data-dir", str(base / f"conn{k}"), "connect", "--registry", str(reg)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(base / f"conn{k}.err", "wb")))
        ps = [psutil.Process(c.pid) for c in connectors]
        fleet_ps = [psutil.Process(p.pid) for p in procs]

        def fleet_cpu() -> float:
            return sum(sum(p.cpu_times()[:2]) for p in fleet_ps)
        with psycopg.connect(dsn, autocommit=True) as db:
            while True:
                connected = db.execute("SELECT count(*) FROM connector_health WHERE status='connected'").fetchone()
                held = sum(split(db).values())
                if connected is not None and connected[0] >= args.hosts and held == args.hosts:
                    break
                if time.monotonic() - t_start > 600:
                    raise SystemExit(f"not all connected after 600 s: {connected}, {held} leases")
                time.sleep(1)
            print(f"{args.hosts} hosts ({args.fleet_procs} demo processes, {args.rpm} req/min each = "
                  f"{args.hosts * args.rpm / 60:.0f} req/s), {args.connectors} connectors, lease "
                  f"{args.lease_seconds:.0f} s; all followed and connected after {time.monotonic() - t_start:.0f} s", flush=True)
            time.sleep(args.warmup)
            before_split = split(db)
            c0 = [sum(p.cpu_times()[:2]) for p in ps]
            f0, la0 = fleet_cpu(), os.getloadavg()
            w0 = time.monotonic()
            t_b0 = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            rss = [0] * len(ps)
            while time.monotonic() - w0 < args.before:
                rss = [max(r, p.memory_info().rss) for r, p in zip(rss, ps, strict=True)]
                time.sleep(1)
            t_b1 = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            cpu = [(sum(p.cpu_times()[:2]) - c) / (time.monotonic() - w0) for p, c in zip(ps, c0, strict=True)]
            fleet_before, la_b = (fleet_cpu() - f0) / (time.monotonic() - w0), os.getloadavg()
            before = db.execute(LAG_SQL, (t_b0, t_b1)).fetchone()
            print(f"  [measured] before: lag {lag_line(before)}; connector CPU {', '.join(f'{c:.2f}' for c in cpu)}; "
                  f"load average {la_b[0]:.2f}", flush=True)

            victim_i = len(connectors) - 1
            victim = connectors[victim_i]
            vholder = next(h for h in before_split if holder_pid(h) == victim.pid)
            moved = [r[0] for r in db.execute("SELECT provider_id FROM leases WHERE scope='follow' AND holder=%s",
                                              (vholder,)).fetchall()]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            t_kill: datetime = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            k0 = time.monotonic()
            t_leased = t_connected = None
            while time.monotonic() - k0 < 10 * args.lease_seconds + 120:
                if t_leased is None:
                    n = db.execute("SELECT count(*) FROM leases WHERE scope='follow' AND provider_id = ANY(%s) "
                                   "AND holder <> %s AND expires_at > now()", (moved, vholder)).fetchone()
                    if n is not None and n[0] == len(moved):
                        t_leased = time.monotonic() - k0
                n = db.execute("SELECT count(*) FROM connector_health WHERE provider_id = ANY(%s) AND "
                               "status='connected' AND updated_at > %s", (moved, t_kill)).fetchone()
                if n is not None and n[0] == len(moved):
                    t_connected = time.monotonic() - k0
                    break
                time.sleep(0.25)
            t_back = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            ps2 = [p for i, p in enumerate(ps) if i != victim_i]
            c1 = [sum(p.cpu_times()[:2]) for p in ps2]
            f1 = fleet_cpu()
            w1 = time.monotonic()
            t_a0 = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            rss2 = [0] * len(ps2)
            while time.monotonic() - w1 < args.after:
                rss2 = [max(r, p.memory_info().rss) for r, p in zip(rss2, ps2, strict=True)]
                time.sleep(1)
            t_a1 = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            cpu2 = [(sum(p.cpu_times()[:2]) - c) / (time.monotonic() - w1) for p, c in zip(ps2, c1, strict=True)]
            fleet_after, la_a = (fleet_cpu() - f1) / (time.monotonic() - w1), os.getloadavg()
            after = db.execute(LAG_SQL + " AND f > %s", (t_a0, t_a1, t_back)).fetchone()
            after_split = split(db)
            lines = ["  lag by 10 s of commit time, before the kill (moved: the killed connector's providers):",
                     *timeline(db, t_b0, t_b1, datetime.min.replace(tzinfo=t_b0.tzinfo), moved),
                     "  after the kill (the rows the after figure counts):",
                     *timeline(db, t_a0, t_a1, t_back, moved)]
            print(f"  [measured] takeover: leases {t_leased}, connected {t_connected}; after: lag {lag_line(after)}; "
                  f"connector CPU {', '.join(f'{c:.2f}' for c in cpu2)}; load average {la_a[0]:.2f}", flush=True)

            # what the hosts hold vs what landed: wait (up to 3 min) until what the hosts had reported is in
            with ThreadPoolExecutor(16) as pool:
                hosts1 = list(pool.map(fetch_host, urls))
            check0 = time.monotonic()
            while True:
                stored_ids: dict[str, set[int]] = {p: set() for p in ids}
                for pid, uid in db.execute("SELECT provider_id, upstream_id FROM activity"):
                    stored_ids[pid].add(int(uid))
                lost = sum(len(set(h[0]) - stored_ids[p]) for p, h in zip(ids, hosts1, strict=True))
                stored_logs: dict[str, str] = dict(db.execute("SELECT provider_id, string_agg(text, '' ORDER BY id) FROM logs "
                                              "WHERE source='proxy' GROUP BY provider_id").fetchall())
                log_lost = sum(not stored_logs.get(p, "").startswith(h[1]) for p, h in zip(ids, hosts1, strict=True))
                if (lost == 0 and log_lost == 0) or time.monotonic() - check0 > 180:
                    break
                time.sleep(5)
            caught_up = time.monotonic() - check0
            upstream_rows = sum(len(h[0]) for h in hosts1)
            doubled_sse = db.execute("SELECT count(*) FROM (SELECT provider_id, payload->>'id' FROM raw_events "
                                     "WHERE type='sse:activity' GROUP BY 1, 2 HAVING count(*) > 1) d").fetchone()
            with ThreadPoolExecutor(16) as pool:
                hosts2 = list(pool.map(fetch_host, urls))
            log_extra = sum(not h[1].startswith(stored_logs.get(p, "")) for p, h in zip(ids, hosts2, strict=True))
            log_ok = len(ids) - len({p for p, h1, h2 in zip(ids, hosts1, hosts2, strict=True)
                                     if not stored_logs.get(p, "").startswith(h1[1])
                                     or not h2[1].startswith(stored_logs.get(p, ""))})
            gap = db.execute("SELECT count(*), max(extract(epoch FROM pg_xact_commit_timestamp(xmin) - finished_at)) "
                             "FROM activity "
                             "WHERE provider_id = ANY(%s) AND finished_at BETWEEN %s AND %s",
                             (moved, t_kill, t_back)).fetchone()
            counts = db.execute("SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM raw_events), "
                                "(SELECT count(*) FROM logs), (SELECT count(*) FROM perf_samples)").fetchone()

        def mb(x: int) -> str:
            return f"{x / 2**20:.0f}"

        print(f"split before: {sorted(before_split.values(), reverse=True)}; after killing one: "
              f"{sorted(after_split.values(), reverse=True)}")
        nice = f" at nice {args.demo_nice}" if args.demo_nice else ""
        print(f"load average (1 min) at the start of the before window {la0[0]:.2f}, at its end {la_b[0]:.2f}, at the "
              f"end of the after window {la_a[0]:.2f}; demo fleet processes{nice} used {fleet_before:.2f} / "
              f"{fleet_after:.2f} cores before / after")
        print(f"before ({args.before} s): lag {lag_line(before)}; connector CPU "
              f"{', '.join(f'{c:.2f}' for c in cpu)} cores (about {sum(cpu) * 1000 / args.hosts:.2f} ms CPU per host "
              f"per second), peak RSS {', '.join(mb(r) for r in rss)} MB")
        print(f"killed connector {victim_i + 1} (SIGKILL) holding {len(moved)} providers: leases taken over after "
              f"{t_leased if t_leased is None else f'{t_leased:.1f}'} s, all {len(moved)} connected again after "
              f"{t_connected if t_connected is None else f'{t_connected:.1f}'} s")
        print(f"  rows of the moved providers finished while nobody followed them: {gap[0] if gap else 0}, "
              f"landed at most {float(gap[1] or 0) if gap else 0:.1f} s after they finished")
        print(f"after ({args.after} s, from {t_back:%H:%M:%S}): lag {lag_line(after)}; connector CPU "
              f"{', '.join(f'{c:.2f}' for c in cpu2)} cores (about {sum(cpu2) * 1000 / args.hosts:.2f} ms CPU per "
              f"host per second), peak RSS {', '.join(mb(r) for r in rss2)} MB")
        print(f"rows: {upstream_rows} activity rows on the hosts, {lost} of them missing in Postgres "
              f"(checked until {caught_up:.0f} s after reading the hosts); "
              f"SSE activity messages stored twice: {doubled_sse[0] if doubled_sse else '?'}; proxy logs: "
              f"{log_ok}/{len(ids)} hosts exact, {log_lost} missing text, {log_extra} with text the host never "
              f"logged (doubled)")
        print("\n".join(lines))
        if counts:
            print(f"totals: activity {counts[0]}, raw events {counts[1]}, log chunks {counts[2]}, perf {counts[3]}")
    finally:
        stop_all([*connectors, *procs], cluster, base)


if __name__ == "__main__":
    main()
