"""Content hashes: stable across key order, sensitive to content and to batch order."""

from __future__ import annotations

import re

from connector.core.hashing import canonical_json, combined_hash, content_hash


def test_key_order_does_not_change_the_hash() -> None:
    """Two payloads that differ only in key order are the same content."""
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


def test_hash_is_32_hex_digits_and_follows_content() -> None:
    """A hash is 32 lowercase hex digits and changes with any value."""
    first = content_hash({"MaHoSo": "D1", "TrangThaiHoSo": "1"})
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != content_hash({"MaHoSo": "D1", "TrangThaiHoSo": "2"})


def test_combined_hash_depends_on_members_and_order() -> None:
    """A batch hash names its members in the order they were sent."""
    a, b = content_hash({"x": 1}), content_hash({"x": 2})
    assert combined_hash([a, b]) != combined_hash([b, a])
    assert combined_hash([a]) != combined_hash([a, a])
    assert re.fullmatch(r"[0-9a-f]{32}", combined_hash([]))
