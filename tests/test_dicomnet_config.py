"""DICOM network settings (off by default, validated) and the offline guard's one exception."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from app import offline
from app.dicomnet.config import DicomNode, NetworkSettings
from app.dicomnet.errors import NodeConfigError
from app.offline import NetworkForbidden, allow_endpoint
from app.settings import Settings, load_settings, save_settings


def test_off_by_default_with_no_nodes() -> None:
    net = Settings().dicom_network
    assert net.enabled is False and net.nodes == () and net.storage_scp is False
    with pytest.raises(NodeConfigError, match="no DICOM node is configured"):
        net.node()


def test_settings_file_round_trip(tmp_path: Path) -> None:
    node = DicomNode(name="PACS", ae_title="PACS1", host="pacs.example.org", port=104,
                     retrieve="C-MOVE")
    net = NetworkSettings(enabled=True, local_ae_title="HCC1", nodes=(node,), storage_scp=True,
                          storage_scp_host="10.1.2.3", storage_scp_port=11112)
    path = tmp_path / "settings.json"
    save_settings(Settings(dicom_network=net), path)
    assert load_settings(path, environ={}).dicom_network == net


@pytest.mark.parametrize(("node", "message"), [
    ({"ae_title": "A" * 17}, "not a valid AE title"),
    ({"ae_title": "BAD\\AE"}, "not a valid AE title"),
    ({"ae_title": "   "}, "not a valid AE title"),
    ({"port": 0}, "not a TCP port"),
    ({"port": "104"}, "not a TCP port"),
    ({"host": "two words"}, "not a host name"),
    ({"retrieve": "C-FETCH"}, "retrieve"),
    ({"tls": True}, "TLS needs the CA certificate"),
])
def test_invalid_node_is_refused_with_the_reason(node: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "PACS", "ae_title": "PACS1", "host": "pacs", "port": 104}
    args.update(node)
    with pytest.raises(NodeConfigError, match=message):
        DicomNode(**args)  # type: ignore[arg-type]


def test_damaged_network_section_keeps_the_rest_and_the_link_off(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"device": "cpu", "dicom_network": {
        "enabled": True, "nodes": [{"name": "x", "ae_title": "A" * 40, "host": "h", "port": 1}]}}))
    settings = load_settings(path, environ={})
    assert settings.device == "cpu"
    assert settings.dicom_network.enabled is False


def test_guard_lets_only_the_configured_endpoint_through() -> None:
    """No packet is sent: the endpoint check is asked, and other endpoints are still refused."""
    before = len(offline.attempts())
    try:
        with allow_endpoint("192.0.2.7", 104):
            assert offline._is_local_address(socket.AF_INET, ("192.0.2.7", 104))
            assert not offline._is_local_address(socket.AF_INET, ("192.0.2.7", 105))
            assert not offline._is_local_address(socket.AF_INET, ("192.0.2.8", 104))
            s = socket.socket()
            try:
                with pytest.raises(NetworkForbidden):
                    s.connect(("192.0.2.8", 104))  # TEST-NET-1: never contacted
            finally:
                s.close()
        assert not offline._is_local_address(socket.AF_INET, ("192.0.2.7", 104))
    finally:
        del offline._attempts[before:]  # the refusal above was deliberate


def test_client_bind_passes_only_during_an_association_and_never_listens() -> None:
    before = len(offline.attempts())
    try:
        with socket.socket() as s, pytest.raises(NetworkForbidden):
            s.bind(("0.0.0.0", 0))  # no association open: refused
        with allow_endpoint("127.0.0.1", 104), socket.socket() as s:
            s.bind(("0.0.0.0", 0))  # pynetdicom's client socket, before it connects out
            with pytest.raises(NetworkForbidden):
                s.listen(1)  # but it can never listen on every interface
    finally:
        del offline._attempts[before:]  # the refusals above were deliberate
