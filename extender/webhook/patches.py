"""JSONPatch (RFC 6902) operations addressed by JSON Pointer (RFC 6901).

A mutating webhook answers with the changes only: building them from paths means the pod the
apiserver sent is never decoded into a model and re-serialised, so fields we do not model (and
fields newer than us) can never be dropped or rewritten by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec


class Op(msgspec.Struct, omit_defaults=True):
    op: str
    path: str
    value: Any = msgspec.UNSET


def escape(token: str) -> str:
    """RFC 6901: '~' becomes '~0' first, then '/' becomes '~1' (so spillover.io~1spillable)."""
    return token.replace("~", "~0").replace("/", "~1")


def pointer(*tokens: str | int) -> str:
    """A JSON Pointer from unescaped reference tokens: pointer("spec", "containers", 0) == "/spec/containers/0"."""
    return "".join("/" + escape(str(token)) for token in tokens)


def add(path: str, value: Any) -> Op:
    """Adds a member, replaces an existing member, or appends to an array when the path ends in '/-'."""
    return Op("add", path, value)


def replace(path: str, value: Any) -> Op:
    return Op("replace", path, value)


def remove(path: str) -> Op:
    return Op("remove", path)


_encoder = msgspec.json.Encoder()


def encode(ops: Sequence[Op]) -> bytes:
    return _encoder.encode(ops)
