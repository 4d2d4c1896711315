"""JSON objects that may not repeat a member (RFC 8259 leaves duplicates to the parser).

Signed and anchored documents must have one meaning: `{"v":1,"v":2}` is refused, not resolved
by whichever value a parser keeps. Each format raises its own error, with its own wording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ObjectHook = Callable[[list[tuple[str, Any]]], dict[str, Any]]


def refuse_duplicate_members(error: Callable[[list[str]], Exception]) -> ObjectHook:
    """An `object_pairs_hook` for `json.loads` raising ``error(names)`` on repeated members.

    ``names`` lists the repeated member names in the order they first repeat.
    """

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        repeated: list[str] = []
        for name, _ in pairs:
            if name in seen and name not in repeated:
                repeated.append(name)
            seen.add(name)
        raise error(repeated)

    return hook
