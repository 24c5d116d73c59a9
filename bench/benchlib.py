"""What the Python benchmarks share: a free loopback port, and a wrk run pinned to CPU 1 whose
figures come from bench/report.lua's JSON line."""

import json
import os
import socket
import subprocess

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
