"""Why a pod cannot go to a peer, for reasons that last, as filter or bind found them.

Some refusals can only be judged from what the scheduler sends: Pod Security needs the pod's whole
JSON (the planner's backlog keeps a slim decoding), and a bind refused (``BindRefused``: the peer
said no) is only known once tried. Kept here by (pod UID, peer) for a few minutes, they keep the
planner from holding room for the pod where it will never go (room other pods then lose), and
``avoided`` answers the next filter from them.
"""

from __future__ import annotations

from cachetools import TTLCache

from extender.capacity.model import PeerState
from extender.pod_security import Level

REFUSALS = 100_000
REFUSAL_SECONDS = 300.0


class PeerRefusals:
    def __init__(self, maxsize: int = REFUSALS, seconds: float = REFUSAL_SECONDS) -> None:
        self._found: TTLCache[tuple[str, str], tuple[str, Level | None]] = TTLCache(maxsize=maxsize, ttl=seconds)
        """(pod UID, peer) -> the reason, and the peer's Pod Security level it was judged against."""

    def note(self, uid: str, peer: str, reason: str, level: Level | None = None) -> None:
        """``level``: the peer's ``spec.podSecurity`` the verdict depends on (None: it does not).
        Filter notes the same verdict on every call for the pod: written only when it is new."""
        key, found = (uid, peer), (reason, level)
        if self._found.get(key) != found:
            self._found[key] = found

    def get(self, uid: str, peer: PeerState) -> str | None:
        """The reason, unless it was a Pod Security verdict and the peer's level changed since."""
        if not self._found:
            return None
        found = self._found.get((uid, peer.name))
        if found is None or (found[1] is not None and found[1] is not peer.pod_security):
            return None
        return found[0]
