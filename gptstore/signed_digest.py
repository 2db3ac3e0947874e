"""The manifest digest a ``gptstore.sig`` names, read without any key or crypto library.

``package`` (rewriting a manifest), ``push`` and ``verify`` need to know whether a signature is
for *this* manifest before (or without) asking whether its key is trusted: a signature left over
from the previous manifest is stale, whoever made it. :mod:`gptstore.signing` checks signatures
in full; this reads only the statement's ``digest``, size-capped, and never raises.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

MAX_BYTES = 1 << 20  #: the largest gptstore.sig read anywhere (gptstore.signing.MAX_SIGNATURE_BYTES)


def signed_digest(data: bytes | None) -> str | None:
    """The manifest digest (64 hex) the envelope ``data`` signs; None when it names none."""
    if not data or len(data) > MAX_BYTES:
        return None
    try:
        payload = json.loads(data).get("payload")
        padded = payload + "=" * (-len(payload) % 4)
        raw = base64.urlsafe_b64decode(padded) if ("-" in payload or "_" in payload) else base64.b64decode(padded)
        digest = json.loads(raw).get("digest")
    except (AttributeError, TypeError, ValueError, binascii.Error):
        return None
    match = re.fullmatch(r"sha256:([0-9a-f]{64})", digest) if isinstance(digest, str) else None
    return match.group(1) if match else None
