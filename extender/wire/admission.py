"""AdmissionReview admission.k8s.io/v1: what kube-apiserver sends a mutating webhook and expects back.

The object under review stays raw bytes until someone asks for the Pod, so a review of a kind we
do not handle costs one small decode. The response's ``patch`` is bytes: msgspec writes bytes as
base64, which is exactly the encoding the apiserver expects for it.
"""

from __future__ import annotations

import msgspec

from extender.wire.core import Pod, pod_decoder

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
JSON_PATCH = "JSONPatch"

_NULL = msgspec.Raw(b"null")


class _Camel(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, forbid_unknown_fields=False):
    pass


class GroupVersionKind(_Camel):
    group: str = ""
    version: str = ""
    kind: str = ""


class GroupVersionResource(_Camel):
    group: str = ""
    version: str = ""
    resource: str = ""


class UserInfo(_Camel):
    username: str = ""
    uid: str = ""
    groups: list[str] | None = None


class AdmissionRequest(_Camel):
    uid: str
    kind: GroupVersionKind = msgspec.field(default_factory=GroupVersionKind)
    resource: GroupVersionResource = msgspec.field(default_factory=GroupVersionResource)
    sub_resource: str = ""
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    operation: str = ""
    user_info: UserInfo | None = None
    object: msgspec.Raw = _NULL
    old_object: msgspec.Raw = _NULL
    dry_run: bool | None = None
    options: msgspec.Raw = _NULL

    @property
    def is_pod(self) -> bool:
        return self.kind.group == "" and self.kind.kind == "Pod" and not self.sub_resource

    def pod(self) -> Pod:
        """The object as a partial Pod; raises msgspec.ValidationError/DecodeError when it is not one."""
        return pod_decoder.decode(self.object)


class Status(_Camel):
    """metav1.Status, as much of it as a webhook sets; the apiserver shows ``message`` to the user."""

    status: str = ""
    message: str = ""
    reason: str = ""
    code: int = 0


class AdmissionResponse(_Camel):
    uid: str
    allowed: bool
    status: Status | None = None
    patch: bytes | None = None
    patch_type: str | None = None
    warnings: list[str] | None = None


class AdmissionReview(_Camel):
    api_version: str = ""
    """Empty defaults so that the values are always written despite omit_defaults."""
    kind: str = ""
    request: AdmissionRequest | None = None
    response: AdmissionResponse | None = None


review_decoder = msgspec.json.Decoder(AdmissionReview)
encoder = msgspec.json.Encoder()


def review_response(response: AdmissionResponse) -> bytes:
    """The whole AdmissionReview the apiserver expects back (apiVersion and kind included)."""
    return encoder.encode(AdmissionReview(api_version=API_VERSION, kind=KIND, response=response))
