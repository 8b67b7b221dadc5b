"""The offline guarantee: nothing in the app reaches another machine (RELIABILITY.md 25)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

import pytest

from app.offline import NetworkForbidden, attempts


def test_guard_blocks_outbound_connect_in_this_process() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        before = len(attempts())
        with pytest.raises(NetworkForbidden, match="192.0.2.1"):
            s.connect(("192.0.2.1", 443))  # TEST-NET-1: never routable, never contacted
        assert len(attempts()) == before + 1
    finally:
        s.close()
        # the attempt above was deliberate: do not let the autouse check count it
        from app import offline

        del offline._attempts[before:]


def test_guard_blocks_name_resolution() -> None:
    from app import offline

    before = len(attempts())
    try:
        with pytest.raises(NetworkForbidden, match="example.org"):
            socket.getaddrinfo("example.org", 443)
    finally:
        del offline._attempts[before:]


def test_guard_allows_loopback() -> None:
    """Loopback is not network traffic (the DDP trainer's process group uses it)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect(server.getsockname())
        conn, _ = server.accept()
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.close()
    finally:
        client.close()
        server.close()


def test_cli_installs_guard_for_every_command(tmp_path) -> None:
    """``hcc-response`` itself runs guarded, not only the test suite."""
    code = (
        "import socket, sys\n"
        "from app.cli import main\n"
        "import app.commands.scan as scan\n"
        "def run(args):\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=0.5)\n"
        "    return 0\n"
        "scan.run = run\n"
        f"sys.exit(main(['scan', {str(tmp_path)!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out
    assert "network access blocked" in out.stderr


def _netns_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30)
    if probe.returncode == 0:
        return True
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0
