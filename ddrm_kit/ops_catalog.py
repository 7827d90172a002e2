"""What `ddrm ops` lists, without importing torch: a snapshot of the operator registry's metadata.

Importing ``operators`` imports torch (seconds of start-up); `ddrm ops` only needs each entry's
display name, description, parameters and observation kind. ``ops_catalog.json`` holds them with
a digest of the ``operators/*.py`` sources they were read from. When the sources no longer match
(or the file is missing), :func:`op_infos` reads the live registry instead, so the listing is never
stale, only slower. Regenerate after changing an operator: ``python -m ddrm_kit.ops_catalog``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
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


def op_infos() -> list[OpInfo]:
    """The registry's entries: from ``ops_catalog.json`` if it matches the sources, else live."""
    try:
        data = json.loads(CATALOG.read_text(encoding="utf-8"))
        if data["sources"] == sources_digest():
            return [OpInfo(**entry) for entry in data["operators"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable snapshot: the live registry is always right
    return live_infos()


def write_catalog(path: Path = CATALOG) -> None:
    """Snapshot the live registry (and the digest of its sources) to ``path``."""
    data = {"sources": sources_digest(), "operators": [asdict(i) for i in live_infos()]}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_catalog()
    print(f"wrote {CATALOG}")
