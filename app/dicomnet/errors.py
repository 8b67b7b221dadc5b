"""Typed errors of the DICOM network link; each message says what happened and what to check."""

from __future__ import annotations

from app.errors import InputError


class DicomNetError(InputError):
    """Base of the network link's errors (exit status 2: a configuration or peer problem)."""


class NetworkDisabled(DicomNetError):
    """The DICOM network link is off (the default) or no node is configured."""


class NodeConfigError(DicomNetError):
    """A node's settings are invalid (AE title, host, port, TLS files)."""


class NodeUnreachable(DicomNetError):
    """No TCP connection to the node: it is down, the port is wrong, or a firewall drops it."""


class NetworkTimeout(DicomNetError):
    """The node accepted the connection but did not answer in time."""


class AssociationRejected(DicomNetError):
    """The node refused the association (e.g. an unknown AE title)."""


class OperationFailed(DicomNetError):
    """A C-FIND, C-GET, C-MOVE or C-STORE ended with a failure status or an aborted association."""


class RetrieveIncomplete(OperationFailed):
    """A study did not arrive completely; nothing of it was kept."""
