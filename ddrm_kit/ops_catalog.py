"""What `ddrm ops` lists, without importing torch: a snapshot of the operator registry's metadata.

Importing ``operators`` imports torch (seconds of start-up); `ddrm ops` only needs each entry's
display name, description, parameters and observation kind. ``ops_catalog.json`` holds them with
a digest of the ``operators/*.py`` sources they were read from. When the sources no longer match
(an edited source tree), :func:`op_infos` reads the live registry instead, so the listing is never
stale, and keeps that snapshot in the user's cache folder (``$XDG_CACHE_HOME/ddrm-kit``), so only
the first call after a change is slow. Regenerate the shipped file after changing an operator:
``python -m ddrm_kit.ops_catalog``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CATALOG", "OpInfo", "live_infos", "op_infos", "sources_digest", "write_catalog"]

CATALOG = Path(__file__).with_name("ops_catalog.json")


@dataclass(frozen=True)
class OpInfo:
    """The part of an ``operators.OperatorSpec`` that `ddrm ops` shows."""

    display: str
    description: str
    params: dict[str, str]
    observation_kind: str


def sources_digest() -> str | None:
    """SHA-256 over the names and contents of ``operators/*.py``; None if they cannot be read."""
    # find_spec locates a top-level package without running its __init__ (which imports torch).
    spec = importlib.util.find_spec("operators")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.py"))
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def live_infos() -> list[OpInfo]:
    """The registry's entries, read from ``operators`` itself (imports torch)."""
    from operators import specs

    return [OpInfo(s.display, s.description, dict(s.params), s.observation_kind) for s in specs()]


def _cached(digest: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "ddrm-kit" / f"ops_catalog-{digest[:16]}.json"


def _read(path: Path, digest: str) -> list[OpInfo] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["sources"] == digest:
            return [OpInfo(**entry) for entry in data["operators"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable snapshot: the live registry is always right
    return None


def op_infos() -> list[OpInfo]:
    """The registry's entries: from a snapshot that matches the sources (shipped, then cached), else live."""
    digest = sources_digest()
    if digest is None:
        return live_infos()
    for path in (CATALOG, _cached(digest)):
        infos = _read(path, digest)
        if infos is not None:
            return infos
    infos = live_infos()
    try:
        write_catalog(_cached(digest), digest, infos)
    except OSError:
        pass  # a read-only home only costs the next call its speed
    return infos


def write_catalog(path: Path = CATALOG, digest: str | None = None, infos: list[OpInfo] | None = None) -> None:
    """Snapshot the live registry (and the digest of its sources) to ``path``, atomically."""
    data = {"sources": digest or sources_digest(), "operators": [asdict(i) for i in infos or live_infos()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    write_catalog()
    print(f"wrote {CATALOG}")
