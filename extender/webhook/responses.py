"""Constructors for admission responses, in the spirit of controller-runtime's admission package.

Keeping them tiny and separate lets the mutation logic say what it decided (allow, deny, patch)
without knowing how an AdmissionResponse is spelled on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence

from extender.webhook.patches import Op, encode
from extender.wire.admission import JSON_PATCH, AdmissionResponse, Status

_REASONS = {400: "BadRequest", 403: "Forbidden", 422: "Invalid", 500: "InternalError"}


def allowed(uid: str, message: str = "", warnings: Sequence[str] = ()) -> AdmissionResponse:
    """``warnings`` are shown to whoever created the object (kubectl prints them as "Warning: ...")."""
    status = Status(code=200, message=message) if message else None
    return AdmissionResponse(uid=uid, allowed=True, status=status, warnings=list(warnings) or None)


def denied(uid: str, message: str, code: int = 403) -> AdmissionResponse:
    """The apiserver shows ``message`` to whoever created the object, prefixed by the webhook's name."""
    reason = _REASONS.get(code, "")
    return AdmissionResponse(
        uid=uid, allowed=False, status=Status(status="Failure", message=message, reason=reason, code=code)
    )


def patched(uid: str, ops: Sequence[Op], warnings: Sequence[str] = ()) -> AdmissionResponse:
    """Allowed with a JSONPatch; with no operations, a plain allow (no empty patch on the wire)."""
    if not ops:
        return allowed(uid, warnings=warnings)
    return AdmissionResponse(
        uid=uid, allowed=True, patch=encode(ops), patch_type=JSON_PATCH, warnings=list(warnings) or None
    )
