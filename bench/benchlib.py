"""What the Python benchmarks share: a free loopback port, a JSON request, a wrk run pinned to
CPU 1 whose figures come from bench/report.lua's JSON line, and what PostgreSQL did for a
database between two snapshots."""

import json
import os
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wrk(url, script, seconds, env, connections=32):
    """Run wrk (2 threads, on CPU 1) with `script` from bench/; the report's figures as a dict
    (requests, rps, p50_ms, p99_ms, socket_errors, non2xx)."""
    env = {**os.environ, "BENCH_DIR": os.path.join(ROOT, "bench"), "BENCH_THREADS": "2", **env}
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t2", f"-c{connections}", f"-d{seconds}s",
                          "-s", os.path.join(ROOT, "bench", script), url],
                         capture_output=True, text=True, env=env, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("{"))
    return json.loads(line)


def http(method, url, auth, ctype=None, body=None):
    """One request with an Authorization header; the JSON answer."""
    req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
    req.add_header("Authorization", auth)
    if ctype:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


PG_STATS_SQL = """
SELECT d.xact_commit, d.tup_inserted + d.tup_updated + d.tup_deleted,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
       COALESCE((SELECT sum(calls) FROM pg_stat_statements s WHERE s.dbid = d.datid), -1)
  FROM pg_stat_database d WHERE d.datname = '{name}'"""


def postgres_cpu_ticks():
    """CPU time (clock ticks) of every PostgreSQL process now: backends, WAL writer, checkpointer."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if comm.startswith("postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def pg_snapshot(admin_url, name):
    """What PostgreSQL has done so far for database `name`: commits, rows written, WAL bytes
    (the whole server's), statements (-1 without pg_stat_statements in `admin_url`'s database),
    CPU ticks of all its processes. Its statistics are flushed about once a second, hence the
    pause."""
    time.sleep(1.5)
    out = subprocess.run(["psql", admin_url, "-tAF", " ", "-c", PG_STATS_SQL.format(name=name)],
                         capture_output=True, text=True, check=True).stdout.split()
    return [int(float(x)) for x in out] + [postgres_cpu_ticks()]


def pg_per_op(before, after, ops):
    """The difference of two snapshots per operation answered."""
    d = [y - x for x, y in zip(before, after)]
    ops = max(ops, 1)
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    return {"commits": d[0] / ops, "rows": d[1] / ops, "wal_bytes": d[2] / ops,
            "statements": d[3] / ops if before[3] >= 0 else None,
            "cpu_us": d[4] * tick_us / ops}
