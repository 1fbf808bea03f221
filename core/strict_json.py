"""JSON as colcomb reads it: a key repeated in one object is an error, not "the last one wins".

A repeated key could hide a second value from a reviewer or a digest check: every JSON document
colcomb reads (manifests, hardware configs, design records, ownership records) goes through here.
"""

from __future__ import annotations

import json


class DuplicateKey(ValueError):
    """A JSON object names one key twice."""


def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook`` that refuses an object with a repeated key (:class:`DuplicateKey`)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise DuplicateKey(f"the key {key!r:.60} appears more than once in one object")
        seen.add(key)
    return dict(pairs)


def loads(text: str | bytes) -> object:
    """``json.loads`` that refuses repeated keys (ValueError, as any malformed JSON)."""
    return json.loads(text, object_pairs_hook=no_duplicates)
