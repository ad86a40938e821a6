"""tiffio's cached_property: computed once per instance, kept in its __dict__, and never held
under a class-wide lock (functools' up to Python 3.11 made threads reading two different files
wait for each other, even across I/O)."""

from __future__ import annotations

import threading

import pytest

from tiffio._cached import cached_property
from tiffio.read.file import TiffFile
from tiffio.read.ifd.ifd import IFD


class Thing:
    def __init__(self, name: str, gate: threading.Event | None = None, wait: threading.Event | None = None) -> None:
        self.name = name
        self.gate, self.wait = gate, wait
        self.calls = 0

    @cached_property
    def value(self) -> str:
        """The name, computed once."""
        self.calls += 1
        if self.gate is not None:
            self.gate.set()
        if self.wait is not None and not self.wait.wait(5):
            raise TimeoutError("another instance's property could not be computed meanwhile")
        return self.name.upper()


def test_computed_once_and_kept_in_the_instance():
    t = Thing("a")
    assert t.value == "A" and t.value == "A" and t.calls == 1
    assert t.__dict__["value"] == "A"
    assert Thing.value.__doc__ == "The name, computed once."
    assert isinstance(Thing.__dict__["value"], cached_property)


def test_two_instances_compute_at_the_same_time():
    """While one thread is inside instance a's property, another computes instance b's: with a
    class-wide lock this would wait for a (which waits for b) until the timeout."""
    inside_a, b_done = threading.Event(), threading.Event()
    a = Thing("a", gate=inside_a, wait=b_done)
    b = Thing("b")
    results: dict[str, object] = {}

    def read_a() -> None:
        try:
            results["a"] = a.value
        except Exception as exc:
            results["a"] = exc

    thread = threading.Thread(target=read_a)
    thread.start()
    assert inside_a.wait(5)
    results["b"] = b.value  # must not wait for a
    b_done.set()
    thread.join(10)
    assert results == {"a": "A", "b": "B"}


def test_the_reader_uses_it():
    assert isinstance(IFD.__dict__.get("spec") or next(c.__dict__["spec"] for c in IFD.__mro__ if "spec" in c.__dict__),
                      cached_property)
    assert isinstance(TiffFile.__dict__["levels"], cached_property)


def test_misuse_is_a_type_error():
    prop = cached_property(lambda self: 1)
    with pytest.raises(TypeError):
        prop.__get__(object(), object)  # never bound to a name
