"""The offline guarantee, enforced in-process (RELIABILITY.md 25).

HCC Response never needs a network: no telemetry, no update checks, no weight downloads. This
module turns that promise into a check. :func:`forbid_network` replaces the socket functions that
reach another machine (``connect``, ``connect_ex``, ``sendto``, ``sendmsg``,
``create_connection``), that would let another machine reach this one (``bind`` to an address
that is not loopback, ``listen`` on a socket bound to one, or not bound at all, which binds to
every interface) and host name resolution in both directions (``getaddrinfo``,
``gethostbyname(_ex)``, ``gethostbyaddr``, ``getnameinfo``) with versions that raise
:class:`NetworkForbidden`. Loopback and Unix sockets stay allowed: they are not network traffic,
and the data-parallel trainer's process group (``torchrun``/gloo) talks over 127.0.0.1.

The one exception is the DICOM network link a site configures (Settings → DICOM network, off
by default): :func:`allow_endpoint` lets connections to exactly the node's host and port through
for the duration of a ``with`` block (an association), and the same for binding and listening on
the storage SCP's configured address while a C-MOVE runs; nothing else.

Every process the app starts runs under it: the CLI installs it for every command (the GUI
included), and the worker processes of :mod:`app.parallel` (``spawn``: they start as fresh
interpreters that inherit nothing) install it in their initializer. The test suite installs it
for every test, and ``hcc-response self-test`` runs under it, so a library that starts phoning
home makes both fail loudly instead of leaking silently.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.errors import HCCError

__all__ = ["NetworkForbidden", "forbid_network", "allow_network", "network_guard", "attempts",
           "allow_endpoint"]


class NetworkForbidden(HCCError):
    """Something in the process tried to reach another machine."""


_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}
_lock = threading.Lock()
_originals: dict[str, Any] = {}
_attempts: list[str] = []
#: (host, port) → number of open allow_endpoint blocks; a name counts for its lookups too.
_allowed: dict[tuple[str, int], int] = {}


def attempts() -> list[str]:
    """Descriptions of every blocked attempt since the guard was installed (oldest first)."""
    with _lock:
        return list(_attempts)


def _is_local_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).strip().lower().rstrip(".")
    if name in _LOCAL_NAMES or name == socket.gethostname().lower():
        return True
    try:
        addr = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified


def _norm(host: object) -> str:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return str(host).strip().lower().rstrip(".")


def _is_allowed_endpoint(address: object) -> bool:
    """True for the (host, port) of a configured DICOM node inside :func:`allow_endpoint`."""
    if not (isinstance(address, tuple) and len(address) >= 2):
        return False
    with _lock:
        return (_norm(address[0]), int(address[1])) in _allowed


def _is_allowed_name(host: object) -> bool:
    name = _norm(host)
    with _lock:
        return any(h == name for h, _port in _allowed)


def _is_client_bind(address: object) -> bool:
    """An ephemeral-port bind while a configured DICOM association is open (pynetdicom binds
    its client socket to ``('', 0)`` before connecting). Harmless: :func:`listen` still refuses
    a socket bound to port 0 or to every interface, so this can only connect out, and only to
    an endpoint :func:`allow_endpoint` let through."""
    if not (isinstance(address, tuple) and len(address) >= 2) or address[1] != 0:
        return False
    with _lock:
        return bool(_allowed)


def _is_loopback_bind(family: int, address: object) -> bool:
    """Whether binding to ``address`` exposes the socket to this machine only.

    Stricter than :func:`_is_local_address`: the unspecified address (``""``, ``0.0.0.0``,
    ``::``) is "this machine" as a destination but "every interface" for a bind.
    """
    if family == getattr(socket, "AF_UNIX", object()):
        return True
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # not an IP socket (netlink, packet sockets need privileges anyway)
    if not (isinstance(address, tuple) and address):
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).strip().lower().rstrip(".")
    if name in ("localhost", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_local_address(family: int, address: object) -> bool:
    if family == getattr(socket, "AF_UNIX", object()):
        return True
    if isinstance(address, tuple) and address:
        return _is_local_host(address[0]) or _is_allowed_endpoint(address)
    return False


def _refuse(what: str) -> None:
    with _lock:
        _attempts.append(what)
    raise NetworkForbidden(
        f"network access blocked: {what} (HCC Response works offline and never uses the network)"
    )


def forbid_network() -> None:
    """Install the guard (idempotent). Calls that would leave this machine raise."""
    with _lock:
        if _originals:
            return
        _originals.update(
            connect=socket.socket.connect,
            connect_ex=socket.socket.connect_ex,
            sendto=socket.socket.sendto,
            sendmsg=socket.socket.sendmsg,
            bind=socket.socket.bind,
            listen=socket.socket.listen,
            getaddrinfo=socket.getaddrinfo,
            gethostbyaddr=socket.gethostbyaddr,
            getnameinfo=socket.getnameinfo,
            gethostbyname=socket.gethostbyname,
            gethostbyname_ex=socket.gethostbyname_ex,
            create_connection=socket.create_connection,
        )
    orig = dict(_originals)

    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_local_address(self.family, address):
            _refuse(f"connect to {address!r}")
        return orig["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_local_address(self.family, address):
            _refuse(f"connect to {address!r}")
        return orig["connect_ex"](self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        address = args[-1] if args else None
        if not _is_local_address(self.family, address):
            _refuse(f"datagram to {address!r}")
        return orig["sendto"](self, data, *args)

    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> Any:
        address = args[2] if len(args) >= 3 else None  # (ancdata, flags, address)
        if address is not None and not _is_local_address(self.family, address):
            _refuse(f"datagram to {address!r}")
        return orig["sendmsg"](self, buffers, *args)

    def bind(self: socket.socket, address: Any) -> Any:
        if not (_is_loopback_bind(self.family, address) or _is_allowed_endpoint(address)
                or _is_client_bind(address)):
            _refuse(f"listening address {address!r} (only loopback is allowed)")
        return orig["bind"](self, address)

    def listen(self: socket.socket, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            try:
                bound = self.getsockname()
            except OSError:
                bound = None
            # an unbound socket listens on every interface; so does one bound to 0.0.0.0
            allowed = bool(bound) and _is_allowed_endpoint(bound)  # the configured storage SCP
            if not allowed and (not bound or not _is_loopback_bind(self.family, bound)
                                or bound[1] == 0):
                _refuse(f"listening on {bound!r} (only loopback is allowed)")
        return orig["listen"](self, *args)

    def getnameinfo(sockaddr: Any, flags: int) -> Any:
        if not (isinstance(sockaddr, tuple) and _is_local_host(sockaddr[0])):
            _refuse(f"host name lookup of {sockaddr!r}")
        return orig["getnameinfo"](sockaddr, flags)

    def resolver(name: str) -> Callable[..., Any]:
        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not (_is_local_host(host) or _is_allowed_name(host)):
                _refuse(f"host name lookup of {host!r}")
            return orig[name](host, *args, **kwargs)

        return resolve

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not (isinstance(address, tuple)
                and (_is_local_host(address[0]) or _is_allowed_endpoint(address))):
            _refuse(f"connection to {address!r}")
        return orig["create_connection"](address, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
    socket.socket.sendmsg = sendmsg  # type: ignore[method-assign,assignment]
    socket.socket.bind = bind  # type: ignore[method-assign,assignment]
    socket.socket.listen = listen  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = resolver("getaddrinfo")
    socket.gethostbyaddr = resolver("gethostbyaddr")
    socket.getnameinfo = getnameinfo
    socket.gethostbyname = resolver("gethostbyname")
    socket.gethostbyname_ex = resolver("gethostbyname_ex")
    socket.create_connection = create_connection  # type: ignore[assignment]


def allow_network() -> None:
    """Remove the guard, restoring the original socket functions."""
    with _lock:
        if not _originals:
            return
        orig = dict(_originals)
        _originals.clear()
    socket.socket.connect = orig["connect"]  # type: ignore[method-assign]
    socket.socket.connect_ex = orig["connect_ex"]  # type: ignore[method-assign]
    socket.socket.sendto = orig["sendto"]  # type: ignore[method-assign]
    socket.socket.sendmsg = orig["sendmsg"]  # type: ignore[method-assign]
    socket.socket.bind = orig["bind"]  # type: ignore[method-assign]
    socket.socket.listen = orig["listen"]  # type: ignore[method-assign]
    socket.getaddrinfo = orig["getaddrinfo"]
    socket.gethostbyaddr = orig["gethostbyaddr"]
    socket.getnameinfo = orig["getnameinfo"]
    socket.gethostbyname = orig["gethostbyname"]
    socket.gethostbyname_ex = orig["gethostbyname_ex"]
    socket.create_connection = orig["create_connection"]


@contextmanager
def allow_endpoint(host: str, port: int) -> Iterator[None]:
    """``with allow_endpoint(host, port):`` — let the guard pass connections to that endpoint.

    For the DICOM node the user configured, while an association with it is open. The address
    a host name resolves to is let through too (the connection goes to the resolved address).
    Everything else stays blocked; blocks nest and are removed on exit.
    """
    keys = [(_norm(host), int(port))]
    try:
        resolved = _originals.get("gethostbyname", socket.gethostbyname)(host)
        keys.append((_norm(resolved), int(port)))
    except OSError:
        pass  # the association will fail with "cannot reach" and say so
    with _lock:
        for key in keys:
            _allowed[key] = _allowed.get(key, 0) + 1
    try:
        yield
    finally:
        with _lock:
            for key in keys:
                _allowed[key] -= 1
                if not _allowed[key]:
                    del _allowed[key]


@contextmanager
def network_guard() -> Iterator[None]:
    """``with network_guard():`` — the guard for the duration of a block."""
    installed_here = not _originals
    forbid_network()
    try:
        yield
    finally:
        if installed_here:
            allow_network()
