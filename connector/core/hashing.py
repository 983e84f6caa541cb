"""Content hashes: how the outbox tells a changed dossier from one already sent.

A hash is taken over canonical JSON (keys sorted), so two payloads that differ only in key
order hash the same, and an unchanged dossier re-pulled from the source is not sent again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The payload as JSON with sorted keys: what is hashed, and what the outbox stores."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def digest(data: bytes) -> str:
    """32 hex digits naming `data` (blake2b, 16 bytes)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def content_hash(payload: Mapping[str, Any]) -> str:
    """32 hex digits over the payload's canonical JSON; stable across runs and platforms."""
    return digest(canonical_json(payload))


#: Bytes of a `step_digest`; a `sent_steps` row holds them end to end.
STEP_DIGEST_SIZE = 8


def step_digest(key: str) -> bytes:
    """Eight bytes naming a step's key, kept for each acknowledged step whose outbox row was
    purged (`sent_steps`): small enough to keep for good, and one false match in 2**64."""
    data = key.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=STEP_DIGEST_SIZE).digest()


def split_digests(blob: bytes) -> list[bytes]:
    """The step digests that `blob` holds end to end."""
    size = STEP_DIGEST_SIZE
    return [blob[i : i + size] for i in range(0, len(blob), size)]


def combined_hash(hashes: Iterable[str]) -> str:
    """One hash naming a whole batch (for the audit trail), order-sensitive like a send."""
    digest = hashlib.blake2b(digest_size=16)
    for value in hashes:
        digest.update(value.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()
