"""The DICOM network link against a real PACS: Debian's Orthanc on 127.0.0.1 (not a mock).

A synthetic study is stored into Orthanc, found with C-FIND, retrieved with C-GET (and C-MOVE),
predicted, and the SR + captures are stored back and found again. Bad conditions are real ones:
a port nothing listens on, a server that accepts and never answers, a wrong AE title that
Orthanc rejects, and Orthanc killed in the middle of a transfer.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_factory import synthetic_patient
from orthanc_server import (
    ORTHANC_AET,
    dicom_files,
    free_port,
    load_study,
    running_pacs,
    settings_for,
    start_or_skip,
)

from app.dicomnet.config import NetworkSettings
from app.dicomnet.errors import (
    AssociationRejected,
    NetworkDisabled,
    NetworkTimeout,
    NodeUnreachable,
    OperationFailed,
    RetrieveIncomplete,
)
from app.dicomnet.link import DicomLink
from app.dicomnet.retrieve import retrieve_study
from app.dicomnet.store import store_files
from app.errors import Cancelled
from app.progress import ProgressState

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_patient(tmp_path_factory.mktemp("pacs-study"), seed=43, matrix=96)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory, study_dir: Path) -> Iterator[dict[str, Any]]:
    """Orthanc for the module, holding the synthetic study (stored with C-STORE)."""
    with running_pacs(tmp_path_factory.mktemp("orthanc"), study_dir) as pacs:
        yield pacs


def test_echo_and_every_association_logged(pacs: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    records: list[Any] = []
    link = DicomLink(settings_for(pacs["server"].port), listener=records.append)
    with caplog.at_level("INFO", logger="app.dicomnet"):
        result = link.echo()
    assert result.node == f"{ORTHANC_AET}@127.0.0.1:{pacs['server'].port}"
    assert [r.purpose for r in records] == ["C-ECHO"] and records[0].outcome == "released"
    assert any("for C-ECHO" in m and "released" in m for m in caplog.messages)


def test_find_patient_and_study(pacs: dict[str, Any], study_dir: Path) -> None:
    link = DicomLink(settings_for(pacs["server"].port))
    header = pydicom.dcmread(dicom_files(study_dir)[0], stop_before_pixels=True)
    patients = link.find_patients(patient_id=str(header.PatientID))
    assert [p.patient_id for p in patients] == [str(header.PatientID)]
    studies = link.find_studies(patient_name="*")
    assert [s.study_uid for s in studies] == [pacs["study_uid"]]
    assert studies[0].n_instances == pacs["n_files"]
    assert studies[0].n_series == 3 and "CT" in studies[0].modalities
    assert link.find_studies(patient_id="NOBODY") == []


def test_retrieve_predict_store_back_and_find_again(pacs: dict[str, Any], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pynetdicom import AE

    from app.dicom.assembly import assemble_folder
    from app.export.sources import instance_paths
    from app.export.sr import read_prediction_sr
    from app.export.writer import export_dicom
    from app.inference.gradcam import gradcam_study
    from app.inference.predictor import predict
    from app.inference.weights import load_bundled_model

    def no_listening(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("C-GET must not start a server")

    monkeypatch.setattr(AE, "start_server", no_listening)
    link = DicomLink(settings_for(pacs["server"].port))
    import_dir = tmp_path / "import"
    got = retrieve_study(link, pacs["study_uid"], import_dir)
    assert got.n_files == pacs["n_files"] and got.method == "C-GET"
    assert [p.name for p in import_dir.iterdir()] == [got.folder.name]  # no staging left

    scan, results = assemble_folder(got.folder, keep_volumes=True)
    study = results[0][1]
    loaded = load_bundled_model(device="cpu")
    result = predict(study, loaded)
    cams = gradcam_study(loaded, study)
    export = export_dicom(study, result, cams, instance_paths(scan, study.assignment.values()),
                          tmp_path / "results")
    stored = store_files(link, export.files)
    assert stored.ok and set(stored.stored) == {export.sr_sop_uid, *export.capture_sop_uids}

    again = link.find_studies(study_uid=pacs["study_uid"])
    assert again[0].n_instances == pacs["n_files"] + len(export.files)
    assert {"SR", "OT"} <= set(again[0].modalities) or "SR" in again[0].modalities
    back = retrieve_study(link, pacs["study_uid"], tmp_path / "again")
    srs = [p for p in back.folder.iterdir() if pydicom.dcmread(p, stop_before_pixels=True).Modality == "SR"]
    assert len(srs) == 1
    assert read_prediction_sr(pydicom.dcmread(srs[0])).label == result.label


def test_retrieve_with_c_move_through_the_storage_scp(pacs: dict[str, Any], tmp_path: Path) -> None:
    server = pacs["server"]
    settings = settings_for(server.port, retrieve="C-MOVE", storage_scp=True,
                         storage_scp_host="127.0.0.1", storage_scp_port=server.scp_port)
    got = retrieve_study(DicomLink(settings), pacs["study_uid"], tmp_path)
    assert got.method == "C-MOVE" and got.n_files >= pacs["n_files"]
    # the storage SCP listened only while the C-MOVE ran
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.scp_port)) != 0


def test_c_move_needs_the_storage_scp_turned_on(pacs: dict[str, Any], tmp_path: Path) -> None:
    settings = settings_for(pacs["server"].port, retrieve="C-MOVE")
    with pytest.raises(Exception, match="storage SCP"):
        retrieve_study(DicomLink(settings), pacs["study_uid"], tmp_path, expected=1)
    assert list(tmp_path.iterdir()) == []


def test_cancel_keeps_nothing(pacs: dict[str, Any], tmp_path: Path) -> None:
    seen = {"n": 0}

    def on_update(fraction: float, text: str) -> None:
        seen["n"] += 1
        if seen["n"] == 5:
            state.cancel()  # the user presses Cancel after a few images

    state = ProgressState(on_update, min_step=0.0)
    with pytest.raises(Cancelled):
        retrieve_study(DicomLink(settings_for(pacs["server"].port)), pacs["study_uid"], tmp_path,
                       state)
    assert list(tmp_path.iterdir()) == []
    DicomLink(settings_for(pacs["server"].port)).echo()  # the PACS is fine afterwards


def test_wrong_called_ae_title_is_rejected(pacs: dict[str, Any]) -> None:
    link = DicomLink(settings_for(pacs["server"].port, ae_title="NOTORTHANC"))
    with pytest.raises(AssociationRejected, match="rejected the association"):
        link.echo()


def test_unknown_calling_ae_title_cannot_query(pacs: dict[str, Any]) -> None:
    link = DicomLink(settings_for(pacs["server"].port, local_ae_title="STRANGER"))
    with pytest.raises(OperationFailed, match="aborted the association.*STRANGER"):
        link.find_studies(patient_name="*")


def test_node_down_is_unreachable() -> None:
    link = DicomLink(settings_for(free_port()))  # nothing listens there
    with pytest.raises(NodeUnreachable, match="connection refused"):
        link.echo()


def test_silent_node_times_out() -> None:
    """A server that accepts the TCP connection and never answers (a hung PACS)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        link = DicomLink(settings_for(server.getsockname()[1], timeout_s=1.0))
        with pytest.raises(NetworkTimeout, match="did not answer"):
            link.echo()
    finally:
        for conn in accepted:
            conn.close()
        server.close()


def test_link_off_by_default_opens_nothing(pacs: dict[str, Any]) -> None:
    settings = dataclasses.replace(settings_for(pacs["server"].port), enabled=False)
    assert NetworkSettings().enabled is False and NetworkSettings().nodes == ()
    with pytest.raises(NetworkDisabled, match="off"):
        DicomLink(settings).echo()


def test_pacs_killed_mid_transfer_leaves_nothing(tmp_path: Path, study_dir: Path) -> None:
    server = start_or_skip(tmp_path / "orthanc")
    try:
        uid = load_study(server, study_dir)
        seen = {"n": 0}

        def on_update(fraction: float, text: str) -> None:
            seen["n"] += 1
            if seen["n"] == 10:
                server.kill()  # the PACS dies half-way through the study

        import_dir = tmp_path / "import"
        with pytest.raises(RetrieveIncomplete, match=r"broke off after \d+ instances: the connection"
                                                     ".* was lost or aborted.*nothing was kept"):
            retrieve_study(DicomLink(settings_for(server.port, timeout_s=5.0)), uid, import_dir,
                           ProgressState(on_update, min_step=0.0))
        assert list(import_dir.iterdir()) == []
    finally:
        server.stop()


def test_tls_node(tmp_path: Path) -> None:
    """Orthanc with DICOM TLS: the app verifies its certificate; plain or unverified fails."""
    from orthanc_server import OrthancServer, make_tls_files, require_orthanc

    require_orthanc()
    tls = make_tls_files(tmp_path / "tls")
    server = OrthancServer(tmp_path / "orthanc", tls=tls)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"Orthanc could not start with TLS here: {exc}")
    try:
        records: list[Any] = []
        link = DicomLink(settings_for(server.port, tls=True, tls_ca_file=tls["ca"]),
                         listener=records.append)
        link.echo()
        assert records[-1].tls and records[-1].outcome == "released"
        # a CA that did not sign the node's certificate: refused, and the message says TLS
        other = make_tls_files(tmp_path / "other")
        with pytest.raises(NodeUnreachable, match="TLS"):
            DicomLink(settings_for(server.port, tls=True, tls_ca_file=other["ca"],
                                   timeout_s=5.0)).echo()
        # without TLS the node does not talk to us
        with pytest.raises((NetworkTimeout, AssociationRejected, NodeUnreachable)):
            DicomLink(settings_for(server.port, timeout_s=3.0)).echo()
    finally:
        server.stop()


def test_cli_pacs_commands(pacs: dict[str, Any], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from app.cli import main
    from app.settings import update_settings

    assert main(["pacs", "echo"]) == 2  # off by default: refused with the reason
    assert "Settings → DICOM network" in capsys.readouterr().err
    update_settings(dicom_network=settings_for(pacs["server"].port))
    assert main(["pacs", "echo"]) == 0
    assert "answered" in capsys.readouterr().out
    assert main(["pacs", "--json", "find", "--patient-name", "*"]) == 0
    studies = json.loads(capsys.readouterr().out)
    assert pacs["study_uid"] in [s["study_uid"] for s in studies]
    assert main(["pacs", "--json", "retrieve", pacs["study_uid"], "--to", str(tmp_path),
                 "--quiet"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["n_files"] >= pacs["n_files"] and Path(got["folder"]).parent == tmp_path
    assert main(["pacs", "retrieve", "1.2.3.4.5.6", "--to", str(tmp_path / "x"), "--quiet"]) == 2
    assert "does not know study 1.2.3.4.5.6" in capsys.readouterr().err
