"""Configuration of the DICOM network link (part of :class:`app.settings.Settings`).

Off by default (``enabled=False``) and without nodes: a fresh installation never talks to
anything. The storage SCP, needed only for C-MOVE, is off by default too, and when on it binds
the configured address only (``127.0.0.1`` unless the site sets the workstation's address).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from app.dicomnet.errors import NodeConfigError

#: AE titles: 1-16 characters of the default character repertoire, no backslash, not all spaces.
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
DEFAULT_LOCAL_AE = "HCCRESPONSE"
RETRIEVE_METHODS = ("C-GET", "C-MOVE")


def check_ae_title(title: str, what: str) -> str:
    """The AE title stripped, or :class:`NodeConfigError` naming ``what`` is wrong with it."""
    stripped = title.strip()
    if not stripped or not _AE_RE.match(title):
        raise NodeConfigError(f"{what} {title!r} is not a valid AE title "
                              "(1-16 printable ASCII characters, no backslash)")
    return stripped


def _check_port(port: object, what: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise NodeConfigError(f"{what} {port!r} is not a TCP port (1-65535)")
    return port


@dataclass(frozen=True)
class DicomNode:
    """A remote DICOM node (the PACS).

    Attributes
    ----------
    name:
        What the user calls it ("PACS radiology").
    ae_title, host, port:
        The node's called AE title and address.
    retrieve:
        ``"C-GET"`` (default: on the same association, the app never listens) or ``"C-MOVE"``
        (the node sends to the app's storage SCP, which must be turned on).
    tls:
        Use TLS (DICOM over TLS, PS3.15 B.1); ``tls_ca_file`` verifies the node's certificate,
        ``tls_cert_file``/``tls_key_file`` identify the app where the node asks for it.
    """

    name: str
    ae_title: str
    host: str
    port: int
    retrieve: str = "C-GET"
    tls: bool = False
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, f"node {self.name!r}: AE title")
        if not self.host.strip() or any(c.isspace() for c in self.host.strip()):
            raise NodeConfigError(f"node {self.name!r}: host {self.host!r} is not a host name")
        _check_port(self.port, f"node {self.name!r}: port")
        if self.retrieve not in RETRIEVE_METHODS:
            raise NodeConfigError(f"node {self.name!r}: retrieve {self.retrieve!r} is not one of "
                                  f"{', '.join(RETRIEVE_METHODS)}")
        if self.tls and not self.tls_ca_file:
            raise NodeConfigError(f"node {self.name!r}: TLS needs the CA certificate that signed "
                                  "the node's certificate")

    @property
    def address(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class NetworkSettings:
    """The DICOM network link's settings.

    Attributes
    ----------
    enabled:
        Master switch; False (the default) means no association is ever opened.
    local_ae_title:
        The app's own (calling) AE title.
    nodes:
        Configured nodes; the first is the one the PACS dialog opens on.
    timeout_s:
        Connection, association and message timeout.
    storage_scp:
        Turn on the storage SCP for C-MOVE (listens only while a C-MOVE runs).
    storage_scp_host, storage_scp_port:
        The address it binds (and which the PACS must have for the app's AE title).
    """

    enabled: bool = False
    local_ae_title: str = DEFAULT_LOCAL_AE
    nodes: tuple[DicomNode, ...] = field(default_factory=tuple)
    timeout_s: float = 30.0
    storage_scp: bool = False
    storage_scp_host: str = "127.0.0.1"
    storage_scp_port: int = 11113

    def __post_init__(self) -> None:
        check_ae_title(self.local_ae_title, "local AE title")
        _check_port(self.storage_scp_port, "storage SCP port")
        if not 0.1 <= float(self.timeout_s) <= 3600:
            raise NodeConfigError(f"timeout {self.timeout_s!r} s is outside 0.1-3600 s")

    def node(self, name: str | None = None) -> DicomNode:
        """The named node (the first when None); :class:`NodeConfigError` when there is none."""
        for node in self.nodes:
            if name is None or node.name == name:
                return node
        raise NodeConfigError("no DICOM node is configured" if name is None
                              else f"no DICOM node named {name!r}")

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["nodes"] = [dataclasses.asdict(n) for n in self.nodes]
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> NetworkSettings:
        """Parse a settings file's section; :class:`NodeConfigError` when it is invalid."""
        if not isinstance(doc, dict):
            raise NodeConfigError("the DICOM network settings are not an object")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        nodes = values.pop("nodes", [])
        if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
            raise NodeConfigError("the DICOM nodes are not a list of objects")
        node_fields = {f.name for f in dataclasses.fields(DicomNode)}
        try:
            parsed = tuple(DicomNode(**{k: v for k, v in n.items() if k in node_fields})
                           for n in nodes)
            return cls(nodes=parsed, **values)
        except TypeError as exc:
            raise NodeConfigError(f"invalid DICOM network settings: {exc}") from exc
