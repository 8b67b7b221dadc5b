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


def _forget_attempts(before: int) -> None:
    """The attempts in these tests are deliberate: the autouse check must not count them."""
    from app import offline

    del offline._attempts[before:]


def test_guard_blocks_sendmsg_datagrams() -> None:
    """``sendmsg`` with an address is a datagram like ``sendto`` (it went out before issue 19)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    before = len(attempts())
    try:
        with pytest.raises(NetworkForbidden, match="192.0.2.1"):
            s.sendmsg([b"x"], [], 0, ("192.0.2.1", 9))
        # to loopback it is allowed (nothing listens there; UDP does not care)
        assert s.sendmsg([b"x"], [], 0, ("127.0.0.1", 9)) == 1
    finally:
        s.close()
        _forget_attempts(before)


def test_guard_blocks_listening_on_other_interfaces() -> None:
    before = len(attempts())
    try:
        for family, anywhere in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            with socket.socket(family, socket.SOCK_STREAM) as s, \
                    pytest.raises(NetworkForbidden, match="only loopback"):
                s.bind((anywhere, 0))
        # an unbound socket's listen() binds to every interface: refused too
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, \
                pytest.raises(NetworkForbidden, match="listening"):
            s.listen(1)
        # loopback listening stays allowed (the DDP trainer's process group)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
    finally:
        _forget_attempts(before)


def test_guard_blocks_reverse_lookups() -> None:
    before = len(attempts())
    try:
        with pytest.raises(NetworkForbidden):
            socket.gethostbyaddr("192.0.2.1")
        with pytest.raises(NetworkForbidden):
            socket.getnameinfo(("192.0.2.1", 80), 0)
    finally:
        _forget_attempts(before)


def _try_network_in_worker(host: str, _progress: object) -> str:
    """Runs in a spawned worker: what happened when it tried to reach ``host``."""
    import os
    import socket as sock

    from app.offline import NetworkForbidden

    try:
        sock.create_connection((host, 80), timeout=0.2)
    except NetworkForbidden:
        return f"blocked in {os.getpid()}"
    except OSError as exc:  # the guard is missing: the attempt really went to the network stack
        return f"not blocked in {os.getpid()}: {exc}"
    return f"not blocked in {os.getpid()}: connected"


def test_worker_processes_run_under_the_guard() -> None:
    """The spawned workers of demo-data/train/evaluate install the guard themselves."""
    import os

    from app.parallel import run_jobs

    results = run_jobs(_try_network_in_worker, ["192.0.2.1", "192.0.2.2"], workers=2)
    assert all(r.startswith("blocked in ") for r in results), results
    assert all(r != f"blocked in {os.getpid()}" for r in results)  # really other processes
