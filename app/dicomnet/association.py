"""Opening one association with the configured node: guard, TLS, timeouts, logging, errors.

Every association goes through :func:`open_association`, so each one is logged the same way
(``association #n to AE@host:port for <purpose>: <outcome> in <s>``) and each way it can fail
becomes one typed error with a sentence a user can act on:

- no TCP connection (node down, wrong port, firewall) → :class:`NodeUnreachable`;
- connected but no answer within the timeout → :class:`NetworkTimeout` (pynetdicom then
  aborts, so "no A-ASSOCIATE answer received" is what tells a timeout from an abort);
- an A-ASSOCIATE-RJ (wrong called AE title, calling AE unknown to the node) →
  :class:`AssociationRejected` with the node's reason;
- an abort while it is open → reported by the operation as :class:`OperationFailed`.

pynetdicom reports a failed connection only in its log, so the outcome is read from its
events: ``EVT_CONN_OPEN`` tells "no connection" from "no answer", ``EVT_PDU_RECV`` carries the
rejection's reason. The PDU event, not the ACSE one: when the node rejects and closes at once
(Orthanc does), pynetdicom may see the closed socket first, abort, and never hand the
A-ASSOCIATE-RJ to its ACSE layer — a race seen on a loaded machine.
"""

from __future__ import annotations

import itertools
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ

from app.dicomnet.config import DicomNode, NetworkSettings
from app.dicomnet.errors import (
    AssociationRejected,
    NetworkDisabled,
    NetworkTimeout,
    NodeConfigError,
    NodeUnreachable,
)
from app.offline import allow_endpoint

log = logging.getLogger("app.dicomnet")
_counter = itertools.count(1)


@dataclass
class AssociationRecord:
    """One association as logged: with whom, what for, how it ended, how long it took."""

    number: int
    node: str
    purpose: str
    outcome: str
    seconds: float
    tls: bool


AssociationListener = Callable[[AssociationRecord], None]


def _tls_args(node: DicomNode) -> tuple[ssl.SSLContext, str] | None:
    if not node.tls:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=node.tls_ca_file)
        if node.tls_cert_file:
            context.load_cert_chain(node.tls_cert_file, node.tls_key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise NodeConfigError(f"node {node.name!r}: cannot load the TLS certificates: {exc}") from exc
    return context, node.host


def configure_ae(settings: NetworkSettings) -> AE:
    """An application entity with the site's AE title and the timeouts of the settings."""
    ae = AE(ae_title=settings.local_ae_title)
    t = float(settings.timeout_s)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = t
    return ae


@contextmanager
def open_association(settings: NetworkSettings, node: DicomNode, purpose: str, ae: AE,
                     ext_neg: Sequence[Any] | None = None,
                     listener: AssociationListener | None = None) -> Iterator[Association]:
    """An established association with ``node``, released (and logged) on exit.

    Raises
    ------
    NetworkDisabled, NodeUnreachable, NetworkTimeout, AssociationRejected
        Before anything was exchanged.
    """
    if not settings.enabled:
        raise NetworkDisabled("the DICOM network link is off; turn it on in Settings → DICOM "
                              "network")
    number = next(_counter)
    seen: dict[str, Any] = {"open": False, "answer": False, "reject": None}

    def on_open(event: evt.Event) -> None:
        seen["open"] = True

    def on_pdu(event: evt.Event) -> None:
        pdu: Any = getattr(event, "pdu", None)  # set for EVT_PDU_RECV
        seen["answer"] = True
        if isinstance(pdu, A_ASSOCIATE_RJ):
            seen["reject"] = f"{pdu.reason_str} ({pdu.result_str}, {pdu.source_str})"

    handlers: list[Any] = [(evt.EVT_CONN_OPEN, on_open), (evt.EVT_PDU_RECV, on_pdu)]
    tls = _tls_args(node)
    t0 = time.monotonic()

    def record(outcome: str) -> None:
        rec = AssociationRecord(number, node.address, purpose, outcome,
                                round(time.monotonic() - t0, 3), tls is not None)
        log.info("association #%d to %s for %s%s: %s in %.3f s", number, node.address, purpose,
                 " (TLS)" if tls else "", outcome, rec.seconds)
        if listener is not None:
            listener(rec)

    with allow_endpoint(node.host, node.port):
        assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, tls_args=tls,
                             evt_handlers=handlers, ext_neg=list(ext_neg or []) or None)
        if not assoc.is_established:
            timeout = float(settings.timeout_s)
            if assoc.is_rejected or seen["reject"]:
                record(f"rejected: {seen['reject']}")
                raise AssociationRejected(
                    f"{node.address} rejected the association: {seen['reject'] or 'no reason'}; "
                    f"check the node's AE title and that it knows this AE title "
                    f"({settings.local_ae_title})")
            if not seen["open"]:
                waited = time.monotonic() - t0
                why = (f"no answer within {timeout:g} s" if waited >= 0.9 * timeout
                       else "the TLS handshake failed (check the CA certificate and the node's "
                            "certificate for this host name)" if tls else "connection refused")
                record(f"unreachable ({why})")
                raise NodeUnreachable(f"cannot reach the DICOM node {node.address}: {why}; check "
                                      "that it runs and that host and port are right")
            if not seen["answer"]:  # pynetdicom aborts after its ACSE timeout
                record("timeout")
                raise NetworkTimeout(f"{node.address} accepted the connection but did not answer "
                                     f"the association request within {timeout:g} s")
            record("aborted while associating")
            raise AssociationRejected(f"{node.address} aborted the association request "
                                      "(with TLS: check the certificates)")
        outcome = "released"
        try:
            yield assoc
        except BaseException as exc:
            outcome = f"ended by {type(exc).__name__}"
            raise
        finally:
            if assoc.is_established:
                assoc.release()
            elif assoc.is_aborted and outcome == "released":
                outcome = "aborted"
            record(outcome)
