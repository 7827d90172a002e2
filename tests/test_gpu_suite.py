"""benchmarks/gpu_suite.py: the dry run on the CPU goes through every step, and the report keeps what a
stopped run measured."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"


def _suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorder_skips_past_the_deadline_and_keeps_records(tmp_path):
    suite = _suite()
    rec = suite.Recorder(tmp_path / "measure.json", deadline=time.time() + 100)
    rec.add("overhead", {"op": "sr4", "ddrm_s": 1.05, "bare_s": 1.0, "overhead_pct": 5.0})
    assert rec.has_time(10, "cheap") and not rec.has_time(1000, "compiled forward b32 fp16")
    saved = json.loads((tmp_path / "measure.json").read_text())
    assert saved == {"skipped": ["compiled forward b32 fp16"],
                     "overhead": [{"op": "sr4", "ddrm_s": 1.05, "bare_s": 1.0, "overhead_pct": 5.0}]}
    report = {"dry_run": False, "budget_s": 500, "wall_s": 12.0, "environment": {"device": "NVIDIA H200"},
              "steps": [{"step": "tests", "status": "ok", "seconds": 3.0, "summary": "43 passed in 9s"}], **saved}
    md = suite.markdown(report)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| sr4")]
    assert rows == [["sr4", "1.0500", "1.0000", "5.00"]]
    assert "Not measured (time budget): compiled forward b32 fp16" in md and "NVIDIA H200" in md


@pytest.mark.slow
def test_dry_run_passes_every_step(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(SUITE), "--dry-run", "--out", str(out), "--budget-s", "400",
                          "--site", str(tmp_path / "site")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["ok", "ok", "ok"]
    tests = report["steps"][1]["summary"]
    assert "skipped" in tests and "failed" not in tests and "error" not in tests
    assert len([r for r in report["forward"] if not r["compile"]]) == 2 * 2 * 2
    assert [r["op"] for r in report["overhead"]] == ["sr4", "deblur_gauss", "inp_random50", "color", "jpeg10"]
    assert [r["op"] for r in report["largest"]] == ["sr4", "deblur_gauss", "inp_random50", "color", "jpeg10"]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and {"results.json", "results.md"} <= set(files)
