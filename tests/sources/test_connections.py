"""Which connection each request uses, and what the first remote read costs besides its round
trips: counted from the range server's connection and request logs (never timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy

import tiffio
from tests.support.rangeserver import RangeServer
from tiffio.sources.http import close_idle_connections
from tiffio.sources.remote import clear_metadata_cache

REPO = Path(__file__).resolve().parents[2]


def test_open_and_tile_use_only_the_opens_connections(writer_tif):
    """The tile request takes a connection that carried one of the open's answers, not one of
    the connections pre-connected in the background (which the server may still be setting
    up: here each new connection costs it 50 ms before it reads a request)."""
    clear_metadata_cache()
    with RangeServer(rtt=0.05, conn_rtt=0.05) as server:
        server.put("a.tif", writer_tif.read_bytes())
        try:
            with tiffio.open(server.url("a.tif")) as tif, tiffio.open(writer_tif) as local:
                opening = server.requests()
                assert len(opening) == 2 and len({r.conn for r in opening}) == 2  # head and tail together
                for index in (5, 17, 40):
                    server.reset_log()
                    numpy.testing.assert_array_equal(tif.ifds[0].read_segment(index), local.ifds[0].read_segment(index))
                    (request,) = server.requests()
                    assert request.conn in {r.conn for r in opening}
        finally:
            close_idle_connections()
            clear_metadata_cache()
        assert server.connections == 8  # the six pre-connected ones stay idle until a wide read needs them


def test_connections_are_opened_while_the_open_is_in_flight(writer_tif):
    """The background connections start with the open's requests, not after their answers: the
    server holds its answers until it has accepted all eight connections (five seconds at most;
    a client that pre-connects only after the open's answers makes it give up waiting)."""
    clear_metadata_cache()
    with RangeServer() as server:
        server.put("a.tif", writer_tif.read_bytes())
        server.hold_until_connections = 8
        try:
            with tiffio.open(server.url("a.tif")) as tif:
                assert tif.ifds[0].shape == (2048, 2048, 3)
            assert not server.hold_timed_out
            assert server.connections == 8
            assert len(server.requests()) == 2
        finally:
            close_idle_connections()
            clear_metadata_cache()


_FIRST_READ = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
import tiffio, tiffio.sources.http, tiffio.codecs
before = set(sys.modules)
with tiffio.open(sys.argv[1]) as tif:
    during_open = sorted(set(sys.modules) - before)
    tile = tif.ifds[0].read_segment(3)
during_read = sorted(set(sys.modules) - before - set(during_open))
tables = sorted(n for n in ("BYTE_DECODERS", "IMAGE_DECODERS", "ENCODERS") if n in vars(tiffio.codecs))
print(json.dumps({"open": during_open, "read": during_read, "tables": tables, "shape": list(tile.shape)}))
"""


def test_first_remote_read_imports_only_its_codec(writer_tif):
    """In a fresh process that has imported tiffio: opening a URL imports nothing (the first
    connection's host-name codec comes with tiffio.sources.http), and reading a JPEG tile loads
    only the JPEG extension, not imagecodecs' other codecs (~10 ms of CPU the read would wait for)."""
    clear_metadata_cache()
    with RangeServer() as server:
        server.put("a.tif", writer_tif.read_bytes())
        out = subprocess.run([sys.executable, "-c", _FIRST_READ, server.url("a.tif"), str(REPO)],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [256, 256, 3]
    assert result["open"] == []
    codec_modules = [m for m in result["read"] if m.startswith("imagecodecs.")]
    assert codec_modules and all("jpeg8" in m for m in codec_modules), result["read"]
    assert result["tables"] == []
