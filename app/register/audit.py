"""The hash chain of the audit trail, and the content hashes of the rows it vouches for.

Every event row stores ``prev_hash`` (the previous row's ``hash``; 64 zeros for the first) and
``hash = SHA-256(prev_hash + canonical JSON of the event)``, where the event includes its own
id, time, kind, user, app version, the case it concerns and its payload. Events about a
prediction or an outcome carry that row's content hash (``record_hash``), so a row edited behind
the register's back no longer matches its event, and an edited or deleted event breaks the chain
from that point on. This holds even for someone who drops the append-only triggers with raw SQL;
only rewriting the whole chain from the edit onwards would hide it (anchor the latest hash
elsewhere — a backup, a printed report — to catch that too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(obj: Any) -> str:
    """One fixed text for a JSON value: sorted keys, no spaces, UTF-8, no NaN.

    Hashes are taken over this text, so the same content always gives the same hash regardless
    of dict order or the JSON library's defaults.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def sha256_text(text: str) -> str:
    """Hex SHA-256 of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(content: Mapping[str, Any]) -> str:
    """Hash of a row's content (a prediction or an outcome with what it refers to)."""
    return sha256_text(canonical_json(dict(content)))


def event_content(*, id: int, created_at: str, kind: str, os_user: str, app_version: str,
                  prediction_id: int | None, payload: str) -> dict[str, Any]:
    """The fields of an audit event that its hash covers (all of them but the hashes).

    ``payload`` is the stored canonical JSON text itself, so that any change to the stored
    bytes, even a semantically neutral one, is detected.
    """
    return {
        "id": id,
        "created_at": created_at,
        "kind": kind,
        "os_user": os_user,
        "app_version": app_version,
        "prediction_id": prediction_id,
        "payload": payload,
    }


def chain_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """``SHA-256(prev_hash + canonical JSON of the event)`` — one link of the chain."""
    return sha256_text(prev_hash + canonical_json(dict(content)))
