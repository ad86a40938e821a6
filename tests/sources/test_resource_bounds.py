"""What a bad file, a bad server, a bad argument or a careless caller can make a read cost.

* time: remote requests have deadlines (a trickling or silent server is abandoned, the error
  counts the bytes that arrived), and Ctrl-C ends a process blocked on a stalled read;
* memory: iter_regions makes its windows lazily; a tile or result too large to allocate is a
  LimitExceededError; a fill that does not fit the dtype is refused;
* descriptors: a TiffFile never closed closes when collected (ResourceWarning);
* blocking: a FIFO, a device, a socket or a directory is refused at once;
* errors: every one is a TiffError naming the file (path or redacted URL), a missing file is
  also a FileNotFoundError, and no raw exception escapes on misuse.

Wall-clock bounds here are hang guards only (far above what a passing run takes), never
performance assertions.
"""

from __future__ import annotations

import errno
import gc
import os
import pickle
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy
import pytest

import tiffio
from tests.support.remote import fresh_server, index_tiles_bytes
from tests.support.tiffbuild import Builder

REPO = Path(__file__).resolve().parents[2]
MALFORMED = REPO / "fixtures" / "malformed"


def _run_python(code: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env, **kwargs)


@pytest.fixture
def tiled(tmp_path) -> Path:
    path = tmp_path / "tiled.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((256, 256), "uint16", tile=(64, 64), compression="deflate")
        for r in range(4):
            for c in range(4):
                im.write_tile(r, c, numpy.full((64, 64), r * 4 + c, numpy.uint16))
    return path


@pytest.fixture
def server():
    with fresh_server(hold_timeout=30.0) as srv:
        yield srv


@pytest.fixture(scope="module")
def big_tiff_bytes(tmp_path_factory) -> bytes:
    """1 MiB of uncompressed tiles: tiles past the first 64 KiB need requests of their own."""
    return index_tiles_bytes(tmp_path_factory.mktemp("bounds") / "big.tif", 1024, 64)


# --- time: remote deadlines -----------------------------------------------------------------------------

def test_default_timeouts_are_the_documented_ones(server, big_tiff_bytes):
    from tiffio.sources import Timeout
    assert Timeout() == Timeout(connect=10.0, read=30.0, total=120.0, low_speed=1024.0, low_speed_time=30.0)
    server.put("a.tif", big_tiff_bytes)
    with tiffio.open(server.url("a.tif")) as tif:
        assert tif.source.fetcher.timeout == Timeout()
    with tiffio.open(server.url("a.tif"), timeout=5, metadata_cache=False) as tif:  # a number: the whole request
        assert tif.source.fetcher.timeout == Timeout(connect=5.0, read=5.0, total=5.0, low_speed_time=5.0)
    with pytest.raises(tiffio.TiffValueError):
        tiffio.open(server.url("a.tif"), timeout=-1)
    with pytest.raises(tiffio.TiffTypeError):
        tiffio.open(server.url("a.tif"), timeout="soon")


def test_trickling_server_is_abandoned_by_the_speed_floor(server, big_tiff_bytes):
    """One byte every 0.2 s keeps every recv busy (a read timeout never fires); the speed
    floor (here 100 bytes/s over 1 s windows) abandons it."""
    from tiffio.sources import Timeout
    server.put("a.tif", big_tiff_bytes)
    server.hostile = "trickle"
    started = time.monotonic()
    with pytest.raises(tiffio.SourceError) as info:
        tiffio.open(server.url("a.tif"), timeout=Timeout(read=20, total=60, low_speed=100, low_speed_time=1))
    assert isinstance(info.value, TimeoutError) and info.value.errno == errno.ETIMEDOUT
    assert "less than 100 bytes/s over 1 s (Timeout.low_speed)" in str(info.value)
    assert time.monotonic() - started < 30  # hang guard only: the floor fires after about 1.2 s


def test_deadline_ends_a_stalled_answer_and_counts_its_bytes(server, big_tiff_bytes):
    """Headers, exactly 5 body bytes, then silence: the request passes its 2 s deadline and the
    error says 5 of the bytes asked for had arrived (the count of the last attempt)."""
    from tiffio.sources import Timeout
    server.put("a.tif", big_tiff_bytes)
    server.hostile, server.trickle_bytes, server.trickle_interval = "trickle", 5, 0.05
    with pytest.raises(tiffio.SourceError) as info:
        tiffio.open(server.url("a.tif"), timeout=Timeout(read=20, total=2, low_speed=0))
    message = str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert "passed its deadline of 2 s (Timeout.total); 5 of " in message and " bytes had arrived" in message


def test_silent_server_is_retried_then_abandoned_within_the_deadline(server, big_tiff_bytes):
    from tiffio.sources import Timeout
    server.put("a.tif", big_tiff_bytes)
    server.hostile = "silent"
    started = time.monotonic()
    with pytest.raises(tiffio.SourceError) as info:
        tiffio.open(server.url("a.tif"), timeout=Timeout(read=0.5, total=3))
    assert isinstance(info.value, TimeoutError)
    assert "no answer had arrived" in str(info.value)
    assert len(server.requests()) >= 4  # head and tail, each tried again after 0.5 s of silence
    assert time.monotonic() - started < 30  # hang guard only


def test_store_backend_call_past_its_deadline(server, big_tiff_bytes):
    """fsspec's call runs on tiffio's I/O thread; the caller stops waiting at Timeout.total."""
    pytest.importorskip("aiohttp")
    server.put("a.tif", big_tiff_bytes)
    with tiffio.open(server.url("a.tif"), backend="fsspec", timeout=2) as tif:
        server.hostile = "silent"
        with pytest.raises(tiffio.SourceError) as info:
            tif.ifds[0].read_segment(100)
        assert isinstance(info.value, TimeoutError) and "Timeout.total" in str(info.value)


def test_ctrl_c_ends_a_process_blocked_on_a_stalled_read(server, big_tiff_bytes):
    """A real process opens a URL whose server never answers (default timeouts: it would wait
    for minutes); SIGINT ends it at once, although an I/O thread is still blocked in recv."""
    server.put("a.tif", big_tiff_bytes)
    server.hostile = "silent"
    code = f"""
        import tiffio
        tiffio.open({server.url("a.tif")!r})
    """
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(server.requests()) < 2 and time.monotonic() < deadline:  # head and tail both sent
            time.sleep(0.05)
        assert len(server.requests()) >= 2, "the process never sent its requests"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=20)  # hang guard: before the fix it waited minutes
        except subprocess.TimeoutExpired:
            pytest.fail("the process did not end after SIGINT")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err


def test_io_threads_are_daemons(server, big_tiff_bytes):
    server.put("a.tif", big_tiff_bytes)
    with tiffio.open(server.url("a.tif")) as tif:
        tif.ifds[0].read_region(0, 0, 1024, 1024)
        list(tif.ifds[0].iter_regions((512, 512)))
    workers = [t for t in threading.enumerate() if t.name.startswith("tiffio-io") or t.name.startswith("tiffio-pre")]
    assert workers and all(t.daemon for t in workers)


# --- memory -----------------------------------------------------------------------------------------------

def test_iter_regions_makes_windows_lazily():
    """A 200-byte file declaring 2**31 x 2**31 pixels (sparse tiles of 2**26 x 2**26): the
    first 256 x 256 chunk arrives with a small allocation peak, in a process whose data
    segment is limited to 1 GiB (a list of every window would need terabytes)."""
    result = _run_python("""
        import resource, tracemalloc, warnings
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))
        import tiffio
        from tests.support.tiffbuild import Builder
        b = Builder()
        side, tile = 1 << 31, 1 << 26
        data = b.build(b.ifd([(256, 4, side), (257, 4, side), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                              (322, 4, tile), (323, 4, tile), (324, 4, 0), (325, 4, 0)]))
        assert len(data) < 200, len(data)
        warnings.simplefilter("ignore")
        # each tile is 2**52 bytes: past the default max_segment_bytes (the tiles are sparse)
        with tiffio.open(data, limits=tiffio.Limits(max_segment_bytes=1 << 62)) as tif:
            ifd = tif.ifds[0]
            tracemalloc.start()
            chunks = ifd.iter_regions((256, 256))
            window, chunk = next(chunks)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert window.height == window.width == 256 and chunk.shape == (256, 256) and not chunk.any()
        print(peak)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) < 4 << 20


def test_huge_tile_is_a_limit_error_not_memory_error(tmp_path):
    """A 2**20 x 2**20 tile: past the default limits a LimitExceededError naming the limit; with
    the limits raised, numpy cannot allocate it, which is a LimitExceededError too."""
    b = Builder()
    data = b.build(b.ifd([(256, 4, 1 << 20), (257, 4, 1 << 20), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                          (322, 4, 1 << 20), (323, 4, 1 << 20), (324, 4, 8), (325, 4, 100)]))
    path = tmp_path / "huge.tif"
    path.write_bytes(data)
    raised = tiffio.Limits(max_segment_bytes=1 << 45, max_output_bytes=1 << 45)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        for limits in (None, raised):
            with tiffio.open(path, limits=limits) as tif:
                for read in (lambda: tif.ifds[0].read_segment(0), lambda: tif.ifds[0].read_region(0, 0, 16, 16),
                             lambda: tif.ifds[0].asarray(), lambda: tif.series[0].asarray(),
                             lambda: tif.series[0].read_region(0, 0, 1 << 20, 1 << 20)):
                    with pytest.raises(tiffio.LimitExceededError, match=str(path)):
                        read()
        with pytest.raises(tiffio.LimitExceededError):
            tiffio.imread(path)
        with tiffio.open(path, limits=raised) as tif:
            spec = tif.ifds[0].spec
        with pytest.raises(tiffio.LimitExceededError):
            tiffio.decode_segment(spec, None, (1, 1 << 25, 1 << 25, 1))


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), 256, -1, 1.5, 2 ** 70, "x", [1, 2], 1j])
def test_fill_that_does_not_fit_the_dtype_is_refused(fill):
    """read_segment(fill=nan) on uint8 gave 0 silently; read_region raised numpy's errors."""
    b = Builder()
    data = b.build(b.ifd([(256, 3, 32), (257, 3, 32), (258, 3, 8), (259, 3, 1), (262, 3, 1), (322, 3, 16),
                          (323, 3, 16), (324, 4, [0, 0, 0, 0]), (325, 4, [0, 0, 0, 0])]))
    with tiffio.open(data) as tif:
        ifd = tif.ifds[0]
        reads = [lambda: ifd.read_segment(0, fill=fill), lambda: ifd.read_region(0, 0, 20, 20, fill=fill),
                 lambda: ifd.asarray(fill=fill), lambda: ifd.read_segments([0, 1], fill=fill),
                 lambda: next(ifd.iter_regions((8, 8), fill=fill)), lambda: tif.read_region(0, 0, 40, 40, fill=fill)]
        for read in reads:
            with pytest.raises(tiffio.TiffValueError, match="fill"):
                read()
        for ok, expected in ((7, 7), (7.0, 7), (numpy.uint8(255), 255), (True, 1)):
            assert (ifd.read_segment(0, fill=ok) == expected).all()
            assert (ifd.read_region(0, 0, 40, 40, fill=ok) == expected).all()


def test_float_fill_may_be_nan():
    b = Builder()
    data = b.build(b.ifd([(256, 3, 16), (257, 3, 16), (258, 3, 32), (259, 3, 1), (262, 3, 1), (339, 3, 3),
                          (322, 3, 16), (323, 3, 16), (324, 4, 0), (325, 4, 0)]))
    with tiffio.open(data) as tif:
        assert numpy.isnan(tif.ifds[0].read_segment(0, fill=float("nan"))).all()
        with pytest.raises(tiffio.TiffValueError, match="outside the range of float32"):
            tif.ifds[0].read_segment(0, fill=1e300)


# --- descriptors ---------------------------------------------------------------------------------------

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd")
def test_unclosed_tifffile_closes_when_collected_with_a_resource_warning(tiled):
    gc.collect()  # files other tests left unclosed: collected now, not in the middle of the count
    before = _open_fds()
    tif = tiffio.open(tiled)
    assert _open_fds() == before + 1
    with pytest.warns(ResourceWarning, match="unclosed TiffFile"):
        del tif
        gc.collect()
    assert _open_fds() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with tiffio.open(tiled) as tif:  # closed: nothing to warn about
            tif.ifds[0].read_segment(0)
        del tif
        gc.collect()


def test_readme_pattern_does_not_run_out_of_descriptors(tiled):
    """``tiffio.open(p).read_region(...)`` 3000 times in a process allowed 64 descriptors."""
    result = _run_python(f"""
        import gc, os, resource, warnings
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        import tiffio
        before = len(os.listdir("/proc/self/fd"))
        for i in range(3000):
            region = tiffio.open({str(tiled)!r}).read_region(64, 64, 8, 8)
            assert (region == 5).all()
        gc.collect()  # the files collected so far have closed; those not collected yet close now
        print(before, len(os.listdir("/proc/self/fd")))
    """, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    before, after = map(int, result.stdout.split()[-2:])
    assert after <= before + 8


# --- blocking: non-regular files ---------------------------------------------------------------------------

def _refused_quickly(call, path) -> BaseException:
    """Run ``call(path)`` in a thread; if it blocks (a FIFO opened without O_NONBLOCK waits for
    a writer), unblock it by opening the FIFO for writing and fail."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call(path)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)  # hang guard
    if thread.is_alive():
        if stat.S_ISFIFO(os.stat(path).st_mode):
            fd = os.open(path, os.O_WRONLY)
            os.close(fd)
        thread.join(10)
        pytest.fail(f"{call} blocked on {path}")
    assert outcome and outcome[0] is not None, f"{call} accepted {path}"
    return outcome[0]


@pytest.fixture
def fifo(tmp_path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.tif"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("opener", ["open", "imread", "sequence"])
def test_fifo_is_refused_at_once(fifo, opener):
    call = {"open": tiffio.open, "imread": tiffio.imread,
            "sequence": lambda p: tiffio.imread([str(p), str(p)])}[opener]
    exc = _refused_quickly(call, fifo)
    assert isinstance(exc, tiffio.TiffTypeError) and isinstance(exc, tiffio.SourceError), repr(exc)
    assert "FIFO" in str(exc) and str(fifo) in str(exc)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_character_devices_are_refused(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    exc = _refused_quickly(tiffio.open, device)
    assert isinstance(exc, tiffio.TiffTypeError) and "character device" in str(exc), repr(exc)


def test_directory_is_refused_as_a_type_error_and_is_a_directory_error(tmp_path):
    exc = _refused_quickly(tiffio.open, tmp_path)
    assert isinstance(exc, tiffio.TiffTypeError) and isinstance(exc, IsADirectoryError)
    assert exc.errno == errno.EISDIR and exc.filename == str(tmp_path) and "directory" in str(exc)


def test_unix_socket_is_refused(tmp_path):
    path = tmp_path / "s.sock"
    if len(str(path)) > 100:
        pytest.skip("the temporary path is too long for a UNIX socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        exc = _refused_quickly(tiffio.open, path)
        assert isinstance(exc, tiffio.TiffTypeError) and "socket" in str(exc), repr(exc)
    finally:
        sock.close()


@pytest.mark.parametrize("command", [["info"], ["check"], ["dump"], ["convert", "{src}", "{dst}"]])
def test_command_line_refuses_a_fifo_promptly(fifo, tmp_path, command):
    args = [a.format(src=fifo, dst=tmp_path / "out.tif") for a in command]
    if len(args) == 1:
        args.append(str(fifo))
    try:
        done = subprocess.run([sys.executable, "-m", "tiffio", *args], capture_output=True, text=True, timeout=60,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail(f"tiffio {command[0]} blocked on a FIFO")
    assert done.returncode in (1, 2) and "FIFO" in done.stdout + done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "out.tif").exists()


# --- errors ---------------------------------------------------------------------------------------------

def test_missing_file_is_file_not_found_and_a_tiff_error(tmp_path):
    path = tmp_path / "nope.tif"
    for call in (tiffio.open, tiffio.imread, lambda p: tiffio.imread([str(p)])):
        with pytest.raises(FileNotFoundError) as info:
            call(path)
        exc = info.value
        assert isinstance(exc, tiffio.TiffError) and isinstance(exc, tiffio.SourceError)
        assert exc.errno == errno.ENOENT and exc.filename == str(path)
        assert str(path) in str(exc) and not str(exc).startswith("[Errno") and not str(exc).endswith("None")
        seen, link = set(), exc  # no cycle in the chain of causes (pickling with tblib, as dask does, follows it)
        while link is not None:
            assert id(link) not in seen, f"{type(exc).__name__} is its own cause or context"
            seen.add(id(link))
            link = link.__cause__ or link.__context__
        copy = pickle.loads(pickle.dumps(exc))  # worker processes send errors back pickled
        assert type(copy) is type(exc) and copy.errno == exc.errno and copy.filename == exc.filename
        assert str(copy) == str(exc)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_permission_error(tiled):
    tiled.chmod(0)
    try:
        with pytest.raises(PermissionError) as info:
            tiffio.open(tiled)
        assert isinstance(info.value, tiffio.SourceError) and info.value.filename == str(tiled)
    finally:
        tiled.chmod(0o644)


def test_errno_families():
    for code, builtin in ((errno.ENOENT, FileNotFoundError), (errno.EACCES, PermissionError),
                          (errno.EPERM, PermissionError), (errno.EISDIR, IsADirectoryError),
                          (errno.ETIMEDOUT, TimeoutError)):
        exc = tiffio.SourceError(code, "message", "f.tif")
        assert isinstance(exc, builtin) and isinstance(exc, tiffio.SourceError) and str(exc) == "message"
        assert exc.errno == code and exc.filename == "f.tif"
    plain = tiffio.SourceError(errno.EIO, "disk")
    assert type(plain) is tiffio.SourceError and str(plain) == "disk"
    assert str(tiffio.SourceError(None, "no errno")) == "no errno"


def _messages_of_a_read(path: Path, strict: bool) -> list[str]:
    """Every warning and error met while opening and decoding ``path`` (each IFD: tags,
    segment 0, the whole image, SubIFDs), under small limits."""
    limits = tiffio.Limits(max_output_bytes=64 << 20, max_segment_bytes=64 << 20)
    messages: list[str] = []

    def touch(ifd, depth: int) -> None:
        for step in (lambda: [t.value for t in ifd.tags.values()], lambda: ifd.read_segment(0),
                     lambda: ifd.asarray(workers=1)):
            try:
                step()
            except tiffio.TiffError as exc:
                messages.append(str(exc))
        if depth < 3:
            try:
                subs = ifd.subifds
            except tiffio.TiffError as exc:
                messages.append(str(exc))
                return
            for sub in subs[:4]:
                touch(sub, depth + 1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with tiffio.open(path, strict=strict, limits=limits) as tif:
                for k, ifd in enumerate(tif.ifds):
                    if k >= 8:
                        break
                    touch(ifd, 0)
        except tiffio.TiffError as exc:
            messages.append(str(exc))
    messages += [str(w.message) for w in caught if issubclass(w.category, tiffio.TiffFormatWarning)]
    return messages


MALFORMED_FILES = sorted(p for p in MALFORMED.glob("*/*.tif*") if p.stat().st_size <= 1 << 20)


@pytest.mark.parametrize("original", MALFORMED_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_warning_and_error_names_the_file(original, tmp_path):
    """Every malformed fixture, read from a path in strict and lenient mode: each message
    tiffio produces says which file, wherever in the file the problem is."""
    path = tmp_path / f"named-{original.name}"
    shutil.copyfile(original, path)
    for strict in (False, True):
        for message in _messages_of_a_read(path, strict):
            assert str(path) in message, message


def test_imread_warning_names_the_damaged_file(tmp_path):
    """In a many-file imread, the warning about a strip cut by the end of a file says which."""
    files = []
    for k in range(30):
        path = tmp_path / f"f{k:03d}.tif"
        tiffio.write_imagej(path, numpy.full((16, 16), k, numpy.uint8))
        files.append(str(path))
    damaged = Path(files[17])
    data = damaged.read_bytes()
    b = Builder()
    entries = [(256, 3, 16), (257, 3, 16), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8 + 2 + 8 * 12 + 4),
               (278, 3, 16), (279, 4, 256)]
    damaged.write_bytes(b.build(b.ifd(entries)) + data[-100:])  # 100 of the strip's 256 bytes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack = tiffio.imread(files, workers=4)
    assert stack.shape == (30, 16, 16) and (stack[16] == 16).all()
    ours = [str(w.message) for w in caught if issubclass(w.category, tiffio.TiffFormatWarning)]
    assert ours and all(m.startswith(f"{damaged}: IFD 0 at offset") for m in ours), ours
    assert any("pass the end of the file" in m for m in ours)


def test_source_error_messages_are_clean(tmp_path, server):
    """Neither '[Errno N]' nor a trailing ': None' in any SourceError's message."""
    errors = []
    for call in (lambda: tiffio.open(tmp_path / "missing.tif"), lambda: tiffio.open(tmp_path),
                 lambda: tiffio.open(server.url("missing.tif")),
                 lambda: tiffio.open(f"http://127.0.0.1:{_free_port()}/a.tif")):
        with pytest.raises(tiffio.SourceError) as info:
            call()
        errors.append(str(info.value))
    for text in errors:
        assert not text.startswith("[Errno") and not text.rstrip().endswith("None"), text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_misuse_raises_tiff_errors(tiled):
    """Bad arguments to the reading API: each a TiffError subclass, never a raw TypeError,
    ValueError, AttributeError or MemoryError."""
    with tiffio.open(tiled) as tif:
        ifd = tif.ifds[0]
        calls = {
            "a NUL in the path": lambda: tiffio.open(str(tiled) + "\0x"),
            "limits not a Limits": lambda: tiffio.open(tiled, limits=5),
            "Limits field not an int": lambda: tiffio.Limits(max_ifds="x"),
            "IFD index str": lambda: tif.ifds["a"],
            "IFD index None": lambda: tif.ifds[None],
            "segment index str": lambda: ifd.read_segment("1"),
            "segment index float": lambda: ifd.read_segment(1.5),
            "segment bytes index str": lambda: ifd.read_segment_bytes("1"),
            "segment location float": lambda: ifd.segment_location(0.5),
            "read_segments of str": lambda: ifd.read_segments(["a"]),
            "read_segments of int": lambda: ifd.read_segments(5),
            "out a list": lambda: ifd.read_region(0, 0, 2, 2, out=[1]),
            "asarray out a list": lambda: ifd.asarray(out=[1]),
            "workers str": lambda: ifd.read_region(0, 0, 2, 2, workers="x"),
            "depth str": lambda: ifd.read_region(0, 0, 2, 2, depth="x"),
            "level str": lambda: tif.read_region(0, 0, 2, 2, level="a"),
            "chunk_shape one int": lambda: next(ifd.iter_regions((0,))),
            "chunk_shape str": lambda: next(ifd.iter_regions("ab")),
            "series key str": lambda: tif.series[0].asarray(key="x"),
            "series window float": lambda: tif.series[0].read_region(0.5, 0, 2, 2),
            "imread None": lambda: tiffio.imread(None),
            "imread series str": lambda: tiffio.imread(tiled, series="a"),
            "FileSequence of int": lambda: tiffio.FileSequence(5),
            "remote option on a path": lambda: tiffio.open(tiled, timeout=3),
            "unknown remote option": lambda: tiffio.open("http://127.0.0.1:9/a.tif", colour="red"),
        }
        for name, call in calls.items():
            try:
                call()
            except tiffio.TiffError:
                continue
            except Exception as exc:
                pytest.fail(f"{name}: raw {type(exc).__name__}: {exc}")
            pytest.fail(f"{name}: accepted")
