"""Shared fixtures: a test key, a fresh home, and a builder for deliveries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from origine.home import Home
from origine.keys import HashKey

TEST_KEY_HEX = "9f3c71d2a8e04b6655c1f0e7d3a2b4c8e1f09a7b6c5d4e3f2a1b0c9d8e7f6a5b"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> HashKey:
    """A real (non-demo) key, also exported as $ORIGINE_HASH_KEY."""
    monkeypatch.setenv("ORIGINE_HASH_KEY", TEST_KEY_HEX)
    monkeypatch.delenv("ORIGINE_HASH_KEY_FILE", raising=False)
    monkeypatch.delenv("ORIGINE_HASH_KEY_LAYERS", raising=False)
    return HashKey(bytes.fromhex(TEST_KEY_HEX))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh origine home, exported as $ORIGINE_HOME / $DAGSTER_HOME."""
    h = Home(tmp_path / "home").ensure()
    monkeypatch.setenv("ORIGINE_HOME", str(h.root))
    monkeypatch.setenv("DAGSTER_HOME", str(h.dagster))
    return h


DeliveryBuilder = Callable[..., Path]


@pytest.fixture
def make_delivery(tmp_path: Path) -> DeliveryBuilder:
    """Build a delivery folder: ``make_delivery({"a.csv": b"..."}, delivery_id=..., ...)``."""
    counter = {"n": 0}

    def build(
        files: dict[str, bytes],
        *,
        folder: str | None = None,
        declare: dict[str, dict[str, Any]] | None = None,
        manifest_format: str = "yaml",
        **fields: Any,
    ) -> Path:
        counter["n"] += 1
        root = tmp_path / "deliveries" / (folder or f"delivery-{counter['n']}")
        root.mkdir(parents=True)
        for name, data in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        doc: dict[str, Any] = {
            "delivery_id": f"D-{counter['n']}",
            "vendor": "acme",
            "recipient": "party-a",
            "delivered_at": "2024-06-05T09:00:00+02:00",
            "country": "FR",
            "files": [{"path": name, **(declare or {}).get(name, {})} for name in files],
        }
        doc.update(fields)
        if manifest_format == "json":
            (root / "manifest.json").write_text(json.dumps(doc))
        else:
            (root / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        return root

    return build


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def raw_forms(e164: str) -> list[bytes]:
    """Ways a raw number could leak: E.164, without '+', national with trunk zero."""
    digits = e164.lstrip("+")
    forms = [e164.encode(), digits.encode()]
    if e164.startswith("+33"):
        forms.append(("0" + e164[3:]).encode())
    return forms


def scan_tree_for(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` whose bytes contain any needle."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                if needle in data:
                    hits.append(f"{path}: {needle!r}")
    return hits
