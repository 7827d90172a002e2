"""`ddrm ops` answers from a checked snapshot of the operator registry, without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ddrm_kit import ops_catalog
from ddrm_kit.cli import main

REGENERATE = "the operator list changed: run `python -m ddrm_kit.ops_catalog` and commit ddrm_kit/ops_catalog.json"


def test_shipped_catalog_lists_what_the_registry_has() -> None:
    # Only the listing is checked: a source edit that leaves it alike makes the digest differ, which
    # costs one slow `ddrm ops` per machine (then cached), not a wrong listing.
    data = json.loads(ops_catalog.CATALOG.read_text(encoding="utf-8"))
    assert [ops_catalog.OpInfo(**e) for e in data["operators"]] == ops_catalog.live_infos(), REGENERATE


def test_ddrm_ops_does_not_import_torch(tmp_path) -> None:
    code = ("import sys\nfrom ddrm_kit.cli import main\n"
            "try:\n    main(['ops'], standalone_mode=False)\n"
            "finally:\n    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    # The first run may need the live registry (sources edited since the shipped snapshot); the
    # second one must answer from a snapshot, shipped or cached.
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "sr_bicubic" in proc.stdout and "inp_mask" in proc.stdout
    assert proc.stderr.strip().endswith("NO-TORCH")


def test_stale_or_missing_catalog_falls_back_to_the_live_registry_and_caches_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    live = ops_catalog.live_infos()
    stale = tmp_path / "ops_catalog.json"
    stale.write_text(json.dumps({"sources": "0" * 64, "operators": [
        {"display": "bogus", "description": "", "params": {}, "observation_kind": "image"}]}))
    monkeypatch.setattr(ops_catalog, "CATALOG", stale)
    assert ops_catalog.op_infos() == live
    cached = list((tmp_path / "cache" / "ddrm-kit").glob("ops_catalog-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["sources"] == ops_catalog.sources_digest()
    monkeypatch.setattr(ops_catalog, "live_infos", lambda: pytest.fail("the cached snapshot was not used"))
    monkeypatch.setattr(ops_catalog, "CATALOG", tmp_path / "missing.json")
    assert ops_catalog.op_infos() == live


def test_ddrm_ops_lists_the_same_with_and_without_the_snapshot(tmp_path, monkeypatch) -> None:
    fast = CliRunner().invoke(main, ["ops"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ops_catalog, "CATALOG", tmp_path / "missing.json")
    slow = CliRunner().invoke(main, ["ops"])
    assert fast.exit_code == slow.exit_code == 0
    assert fast.output == slow.output
