"""A real Orthanc PACS on 127.0.0.1 with a throw-away configuration (tests and bench).

Debian's ``orthanc`` package (installed by ``scripts/install_dicom_tools.sh``) is started as a
child process with its storage, index and log in a temporary folder, its HTTP server off and its
DICOM port on loopback only (``RemoteAccessAllowed`` false; the port is a free one), and killed
after. The app's AE title is registered as a modality (for C-FIND/C-GET/C-MOVE, which Orthanc
refuses to unknown AE titles here) and the called AE title is checked, as a hospital PACS would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ORTHANC_AET = "ORTHANC"
APP_AET = "HCCRESPONSE"


def orthanc_binary() -> str | None:
    """The Orthanc executable, or None (Debian installs it in /usr/sbin, often not on PATH)."""
    return shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if os.access("/usr/sbin/Orthanc", os.X_OK) else None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancServer:
    """One Orthanc process. ``start()`` returns when it answers on its DICOM port."""

    def __init__(self, workdir: Path, *, scp_port: int | None = None,
                 tls: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.scp_port = scp_port or free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / "orthanc.log"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "Name": "hcc-response-test",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "HttpServerEnabled": False,
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": True,
            "DicomAet": ORTHANC_AET,
            "DicomPort": self.port,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomModalities": {"hcc": [APP_AET, "127.0.0.1", self.scp_port]},
            "DicomScpTimeout": 30,
            "DicomAssociationCloseDelay": 0,
            "SaveJobs": False,
            "Plugins": [],
            "StorageCompression": False,
            "ConcurrentJobs": 1,
        }
        if self.tls:
            cfg.update(DicomTlsEnabled=True, DicomTlsCertificate=self.tls["cert"],
                       DicomTlsPrivateKey=self.tls["key"],
                       DicomTlsTrustedCertificates=self.tls["trusted"],
                       DicomTlsRemoteCertificateRequired=False)
        return cfg

    def start(self, timeout_s: float = 30.0) -> OrthancServer:
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError("Orthanc is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.workdir / "orthanc.json"
        cfg_path.write_text(json.dumps(self.config(), indent=1))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([binary, str(cfg_path)], stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-800:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not open port {self.port} within {timeout_s:g} s")

    def kill(self) -> None:
        """SIGKILL (a PACS that dies mid-transfer)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------ pytest helpers

def require_orthanc() -> None:
    """Skip the calling test, saying why, where Orthanc is not installed."""
    import pytest

    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed (Debian package 'orthanc'; "
                    "scripts/install_dicom_tools.sh installs it where apt-get works as root)")


def start_or_skip(workdir: Path) -> OrthancServer:
    """A started Orthanc, or a skip with Orthanc's own reason."""
    import pytest

    require_orthanc()
    server = OrthancServer(workdir)
    try:
        return server.start()
    except RuntimeError as exc:
        pytest.skip(f"Orthanc could not start here: {exc}")


def settings_for(port: int, **changes: Any) -> Any:
    """Network settings for the app's AE talking to Orthanc on ``port`` (link on)."""
    import dataclasses

    from app.dicomnet.config import DicomNode, NetworkSettings

    node_keys = ("name", "ae_title", "host", "retrieve", "tls", "tls_ca_file", "tls_cert_file",
                 "tls_key_file")
    node_args: dict[str, Any] = {"name": "test PACS", "ae_title": ORTHANC_AET,
                                 "host": "127.0.0.1", "port": port}
    node_args.update({k: changes.pop(k) for k in node_keys if k in changes})
    base = NetworkSettings(enabled=True, local_ae_title=APP_AET, nodes=(DicomNode(**node_args),),
                           timeout_s=15.0)
    return dataclasses.replace(base, **changes)


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm") if p.is_file())


def load_study(server: OrthancServer, study_dir: Path) -> str:
    """C-STORE every file of ``study_dir`` into Orthanc; returns the Study Instance UID."""
    import pydicom

    from app.dicomnet.link import DicomLink
    from app.dicomnet.store import store_files

    files = dicom_files(study_dir)
    store_files(DicomLink(settings_for(server.port)), files)
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def make_tls_files(folder: Path) -> dict[str, str]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl CLI).

    Returns the paths Orthanc and the app need: ``ca`` (the app verifies the node with it),
    ``cert``/``key`` (Orthanc's), ``trusted`` (client certificates Orthanc trusts: the CA).
    """
    import pytest

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificates for the TLS test")
    folder.mkdir(parents=True, exist_ok=True)
    f = {k: str(folder / n) for k, n in (("ca", "ca.crt"), ("ca_key", "ca.key"),
                                         ("cert", "server.crt"), ("key", "server.key"),
                                         ("csr", "server.csr"), ("ext", "san.ext"))}
    Path(f["ext"]).write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", f["ca_key"], "-out", f["ca"])
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f["key"],
        "-out", f["csr"])
    run("x509", "-req", "-in", f["csr"], "-CA", f["ca"], "-CAkey", f["ca_key"],
        "-CAcreateserial", "-days", "2", "-extfile", f["ext"], "-out", f["cert"])
    return {"ca": f["ca"], "cert": f["cert"], "key": f["key"], "trusted": f["ca"]}


@contextmanager
def running_pacs(workdir: Path, study_dir: Path) -> Iterator[dict[str, Any]]:
    """Orthanc holding the study of ``study_dir`` (stored with C-STORE), stopped after.

    Yields ``{"server", "study_uid", "n_files"}``; skips the test where Orthanc cannot start.
    """
    server = start_or_skip(workdir)
    try:
        uid = load_study(server, study_dir)
        yield {"server": server, "study_uid": uid, "n_files": len(dicom_files(study_dir))}
    finally:
        server.stop()
