"""The JSON Schemas of docs/schemas: documents checked against them, as readers would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"


def schema_validator(name: str) -> Any:
    """A validator for docs/schemas/NAME.schema.json, resolving references to the other files."""
    return _validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8")))


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    documents = [json.loads(p.read_text("utf-8")) for p in SCHEMAS.glob("*.schema.json")]
    registry: Registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d)) for d in documents)
    base = documents[0]["$id"].rsplit("/", 1)[0] + "/"
    return Draft202012Validator({"$id": base + "test.schema.json", **schema}, registry=registry)


def assert_valid(document: dict[str, Any], name: str) -> None:
    _assert_no_errors(schema_validator(name), document)


def assert_valid_definition(document: dict[str, Any], definition: str) -> None:
    """*document* against one of common.schema.json's $defs (e.g. error_document)."""
    _assert_no_errors(_validator({"$ref": f"common.schema.json#/$defs/{definition}"}), document)


def _assert_no_errors(validator: Any, document: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
