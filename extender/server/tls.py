"""Server-side TLS for the webhook and the extender: contexts built from files, reloaded on change.

cert-manager (or an admin's script) rotates a certificate by rewriting the files of its Secret;
the kubelet updates the mounted copy within a minute. A listener keeps one SSLContext for its life,
so the context it was started with only dispatches: its ``sni_callback`` (which OpenSSL calls for
every handshake, with or without SNI) hands each new connection the context built from the files
as they are now. A rebuilt context rather than one mutated in place, because a CA removed from the
client-CA file must stop being trusted, and ``load_verify_locations`` can only add.

With a client CA, the peer must present a certificate that CA signed (expired or missing: the
handshake fails); ``client_names`` narrows that to certificates naming one of those names, for a
CA that signs more than the scheduler's certificate (a cluster's own CA).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("spillover.tls")

RELOAD_SECONDS = 5.0
"""How often the files' modification times are compared (a stat each, nothing read)."""


class TLSFilesError(ValueError):
    """Certificate, key or CA files that cannot be used; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class TLSFiles:
    cert: str
    key: str
    client_ca: str | None = None
    """When set, clients must present a certificate this CA (bundle) signed."""
    client_names: tuple[str, ...] = ()
    """When set, the client certificate must name one of these (common name or DNS SAN)."""
    alpn: tuple[str, ...] = ()
    """Application protocols offered, most preferred first (e.g. h2, http/1.1)."""

    def paths(self) -> tuple[str, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


def _build(files: TLSFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFilesError(f"cannot load certificate {files.cert} with key {files.key}: {exc}") from exc
    if files.client_ca:
        try:
            context.load_verify_locations(cafile=files.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TLSFilesError(f"cannot load client CA bundle {files.client_ca}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    if files.alpn:
        context.set_alpn_protocols(list(files.alpn))
    return context


def _stamp(paths: Sequence[str]) -> tuple[tuple[float, int], ...]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((st.st_mtime, st.st_ino))  # a Secret volume swaps a symlink: the inode changes
    return tuple(out)


def certificate_names(peercert: dict[str, Any] | None) -> set[str]:
    """The common name(s) and DNS subject alternative names of a peer certificate (``getpeercert()``)."""
    if not peercert:
        return set()
    names = {value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"}
    return names


class ReloadingTLS:
    """The SSLContext to listen with; new connections get the files' current certificate and CA."""

    def __init__(self, files: TLSFiles, what: str) -> None:
        self.files = files
        self.what = what
        self._stamp = _stamp(files.paths())
        self._current = _build(files)
        self.context = _build(files)
        self.context.sni_callback = self._pick
        self.on_reload: list[Callable[[], None]] = []
        """Called after a reload (the extender drains connections made under the old files)."""

    def _pick(self, connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext) -> None:
        connection.context = self._current

    def reload(self) -> bool:
        """Rebuild the context if a file changed; True if it did. Raises TLSFilesError (old kept)."""
        try:
            stamp = _stamp(self.files.paths())
        except OSError as exc:
            raise TLSFilesError(f"cannot stat the {self.what} TLS files: {exc}") from exc
        if stamp == self._stamp:
            return False
        self._current = _build(self.files)
        self._stamp = stamp
        for callback in self.on_reload:
            callback()
        return True

    def allows(self, peercert: dict[str, Any] | None) -> tuple[bool, str]:
        """Whether a verified client certificate names an allowed client; the reason if not."""
        if not self.files.client_names:
            return True, ""
        names = certificate_names(peercert)
        if names & set(self.files.client_names):
            return True, ""
        shown = ", ".join(sorted(names)) or "no name"
        allowed = ", ".join(self.files.client_names)
        return False, f"client certificate names {shown}, not one of the allowed clients ({allowed})"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                if self.reload():
                    log.info("%s TLS files reloaded (%s)", self.what, ", ".join(self.files.paths()))
            except TLSFilesError as exc:
                log.warning("%s TLS files not reloaded, keeping the previous ones: %s", self.what, exc)
