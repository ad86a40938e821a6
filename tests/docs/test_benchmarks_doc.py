"""benchmarks/README.md's tables are what benchmarks/report.py makes of the committed JSON records,
and every record has the fields the tables and a reader need.

No benchmark is run here (timings are never asserted): the JSON records are the benchmarks' own output,
committed with the README; these tests keep the two from drifting apart and check the record helper's
arithmetic (ratio = median of per-run ratios, spread = their range) and its merge by case.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def modules() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("record"), importlib.import_module("report")
    finally:
        sys.path.remove(str(BENCH))


def all_records() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted((BENCH / "results").glob("*.json")):
        out += [(path, rec) for rec in json.loads(path.read_text(encoding="utf-8"))["records"]]
    return out


def test_readme_is_what_report_makes_of_the_json(modules: Any) -> None:
    _record, report = modules
    text = (BENCH / "README.md").read_text(encoding="utf-8")
    assert report.render(text, report.load_records()) == text, "run python benchmarks/report.py and commit README.md"


def test_report_check_mode_agrees() -> None:
    done = subprocess.run([sys.executable, str(BENCH / "report.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_area_has_its_table(modules: Any) -> None:
    record, _report = modules
    text = (BENCH / "README.md").read_text(encoding="utf-8")
    for area in record.AREAS:
        assert text.count(f"<!-- table:{area}:begin -->") == 1 and text.count(f"<!-- table:{area}:end -->") == 1


def test_records_have_the_required_fields(modules: Any) -> None:
    record, _report = modules
    records = all_records()
    assert len(records) >= 40
    for path, rec in records:
        where = f"{path.name}: {rec.get('case')}"
        assert tuple(rec) == record.FIELDS, where
        assert rec["bench"] == path.stem, where
        assert rec["area"] in record.AREAS, where
        assert rec["source"] in record.SOURCES, where
        assert rec["case"] and rec["date"][:4].isdigit() and rec["commit"], where
        assert "python benchmarks/" in rec["command"], where
        assert {"cores", "cpu", "python", "imagecodecs", "tifffile", "gdal", "libvips"} <= set(rec["machine"]), where
        assert rec["unit"] == "s", where
        assert rec["tiffio"] is not None or rec["ratio"] is not None, where
        if rec["peer"] is None:
            assert rec["ratio"] is None and rec["peer_time"] is None, where
        if rec["spread"] is not None:
            low, high = rec["spread"]
            assert low <= high, where
        if rec["floor_ratio"] is not None:
            assert rec["floor"], where
    cases = [(path.name, rec["case"]) for path, rec in records]
    assert len(cases) == len(set(cases)), "a case appears twice in one file"


def test_every_benchmark_script_writes_records() -> None:
    scripts = sorted(BENCH.glob("bench_*.py")) + [BENCH / "remote" / "bench_remote.py"]
    assert len(scripts) >= 16
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        assert "record.start(" in text and "record.save()" in text, script.name


def test_pair_takes_the_median_of_per_run_ratios_and_the_fastest_peer(modules: Any, tmp_path: Path) -> None:
    record, _report = modules
    path = tmp_path / "bench_x.json"
    record.start("bench_x", str(path), argv=["benchmarks/bench_x.py", "--repeat", "3"])
    times = {"tiffio": [1.0, 2.0, 4.0], "slow": [2.0, 2.0, 2.0], "fast": [1.0, 4.0, 1.5], "floor": [0.5, 1.0, 4.0]}
    record.pair("case a", times, "tiffio", {"slow peer": "slow", "fast peer": "fast"}, area="read", floor="floor",
                floor_name="bare codec", per=2)
    assert record.save() == str(path)
    (rec,) = json.loads(path.read_text())["records"]
    assert rec["peer"] == "fast peer"  # median 1.5 against 2.0; per-run ratios 1, 0.5, 2.667
    assert (rec["tiffio"], rec["peer_time"], rec["ratio"], rec["spread"]) == (1.0, 0.75, 1.0, [0.5, 2.66667])
    assert (rec["floor"], rec["floor_time"], rec["floor_ratio"]) == ("bare codec", 0.5, 2.0)
    assert rec["command"] == "python benchmarks/bench_x.py --repeat 3" and rec["source"] == "run"
    assert rec["runs"] == 3


def test_save_replaces_a_case_and_keeps_the_others(modules: Any, tmp_path: Path) -> None:
    record, _report = modules
    path = tmp_path / "bench_y.json"
    record.start("bench_y", str(path), argv=["benchmarks/bench_y.py"])
    record.add("a", area="write", tiffio=1.0, peer="p", peer_time=2.0)
    record.add("b", area="write", tiffio=3.0)
    record.save()
    record.start("bench_y", str(path), argv=["benchmarks/bench_y.py", "--again"])
    record.add("a", area="write", tiffio=5.0, peer="p", peer_time=4.0)
    record.save()
    got = {rec["case"]: rec for rec in json.loads(path.read_text())["records"]}
    assert set(got) == {"a", "b"}
    assert (got["a"]["tiffio"], got["a"]["ratio"], got["a"]["command"]) == (5.0, 1.25, "python benchmarks/bench_y.py --again")
    assert got["b"]["command"] == "python benchmarks/bench_y.py"


def test_without_start_nothing_is_recorded(modules: Any, tmp_path: Path) -> None:
    record, _report = modules
    record._state["bench"] = None
    record.add("x", area="read", tiffio=1.0)
    assert record.save() is None
