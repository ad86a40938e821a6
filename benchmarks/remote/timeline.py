"""Timeline of one remote read: when each connection opens, each request is sent, its first
and last bytes arrive, and each decode runs, against the ideal schedule.

    python benchmarks/remote/timeline.py --files cog,tiffio,tifffile --scenario tile

The server (tests/support/rangeserver.py, ``--rtt`` ms per request and per new connection) logs
connections and requests; the client runs in a fresh process (as in bench_remote.py) with
http.client and tiffio's decode wrapped to record times. Both use time.perf_counter
(CLOCK_MONOTONIC: one clock for both processes). Times are ms after the client's t0 (just
before ``tiffio.open``). A diagnostic, not a benchmark: the wrapping costs a few us per event.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

from benchmarks.remote.bench_remote import DATA, FILES  # noqa: E402
from tests.support.rangeserver import RangeServer  # noqa: E402

CHILD = r'''
import json, sys, threading, time, http.client
sys.path.insert(0, sys.argv[3])
scenario, url = sys.argv[1:3]
import tiffio, tiffio.sources.http, tiffio.read.ifd.segments
events = []
now = time.perf_counter

def ev(kind, **kw):
    events.append({"t": now(), "kind": kind, "thread": threading.current_thread().name, **kw})

def port(conn):
    try:
        return conn.sock.getsockname()[1]
    except Exception:
        return None

connect, request, getresponse = (http.client.HTTPConnection.connect, http.client.HTTPConnection.request,
                                 http.client.HTTPConnection.getresponse)
def w_connect(self):
    ev("connect-start")
    connect(self)
    ev("connect-end", port=port(self))
def w_request(self, method, target, body=None, headers={}, **kw):
    ev("send", port=port(self), range=headers.get("Range"))
    return request(self, method, target, body, headers, **kw)
def w_getresponse(self):
    r = getresponse(self)
    ev("first-byte", port=port(self))
    return r
http.client.HTTPConnection.connect = w_connect
http.client.HTTPConnection.request = w_request
http.client.HTTPConnection.getresponse = w_getresponse
read_body = tiffio.sources.http.HTTPFetcher._read_body
def w_read_body(self, resp, conn, n, what):
    data = read_body(self, resp, conn, n, what)
    ev("last-byte", port=port(conn), n=n)
    return data
tiffio.sources.http.HTTPFetcher._read_body = w_read_body
decode = tiffio.read.ifd.segments.decode_segment
def w_decode(*a, **k):
    ev("decode-start")
    try:
        return decode(*a, **k)
    finally:
        ev("decode-end")
tiffio.read.ifd.segments.decode_segment = w_decode
REGION = (20100, 20100, 2048, 2048)
t0 = now()
ev("open-start")
with tiffio.open(url) as tif:
    ev("open-end")
    ifd = tif.ifds[0]
    if scenario == "tile":
        across = -(-ifd.width // ifd.tile_shape[1])
        arr = ifd.read_segment(40 * across + 40)
    else:
        arr = ifd.read_region(*REGION)
    ev("read-end")
wall = now() - t0
print(json.dumps({"t0": t0, "wall": wall, "events": events}))
'''


def run(server: RangeServer, name: str, scenario: str, rtt: float) -> None:
    server.reset_log()
    url = server.url(FILES[name])
    out = subprocess.run([sys.executable, "-c", CHILD, scenario, url, REPO], capture_output=True, text=True,
                         timeout=120)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    time.sleep(0.1)
    t0 = res["t0"]
    rows = [(e["t"], "client", e["kind"], e.get("thread", ""), {k: v for k, v in e.items()
                                                               if k not in ("t", "kind", "thread")})
            for e in res["events"]]
    by_port = {}
    for c in server.conn_log:
        by_port[c.client_port] = c.conn
        rows.append((c.accepted, "server", f"accept conn {c.conn}", "", {"port": c.client_port}))
        rows.append((c.ready, "server", f"ready conn {c.conn}", "", {}))
    for r in server.requests(None):
        rows.append((r.start, "server", f"req start conn {r.conn}", "", {"range": r.range}))
        rows.append((r.end, "server", f"req answer conn {r.conn}", "", {"sent": r.sent}))
    rows.sort(key=lambda r: r[0])
    print(f"== {name} / {scenario}: wall {res['wall'] * 1000:.1f} ms, {len(server.conn_log)} connections, "
          f"{len(server.requests(None))} requests, {server.round_trips()} round trips; "
          f"ideal: connect {rtt * 1000:.0f} + {server.round_trips()} x {rtt * 1000:.0f} ms + decode")
    for t, side, kind, thread, extra in rows:
        if "port" in extra and extra["port"] in by_port:
            extra["conn"] = by_port[extra["port"]]
        print(f"{(t - t0) * 1000:8.1f}  {side:6} {kind:22} {thread:16} {extra if extra else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rtt", type=float, default=20.0)
    parser.add_argument("--files", default="cog,tiffio,tifffile")
    parser.add_argument("--scenario", default="tile")
    args = parser.parse_args()
    rtt = args.rtt / 1000
    server = RangeServer(rtt=rtt, conn_rtt=rtt).start()
    try:
        for name in args.files.split(","):
            server.put_file(FILES[name], os.path.join(DATA, FILES[name]))
        for name in args.files.split(","):
            run(server, name, args.scenario, rtt)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
