"""Outbound connections to FHIR servers: vetted addresses, and sockets that can be cut.

The caller names ``fhirServer``, so a connection could be aimed at this host's loopback, the
private network or a cloud metadata address. Every new connection resolves the host name,
refuses it if any address it resolves to is not a public one (unless development allows
loopback and private addresses), and connects to the address that was checked: a name that
resolves differently a moment later (DNS rebinding) cannot slip through, and redirects and
paging links are covered because they open connections the same way.

Each call gets its own ``EgressSession``: when the call's deadline passes, ``cut()`` shuts down
every socket it opened, which wakes any thread blocked reading a dripping server at once.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import os
import socket
import threading
from typing import Any

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
)


class AddressRefused(OSError):
    """The host resolves to an address FHIR fetches may not reach."""


def address_allowed(address: str, allow_private: bool) -> bool:
    """Public unicast addresses only; loopback and private ones too when ``allow_private``.
    Link-local (169.254.169.254, the cloud metadata service), multicast and unspecified
    addresses are never allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return False
    if allow_private and (ip.is_loopback or ip.is_private):
        return True
    return ip.is_global and not ip.is_reserved


class _Guard:
    """The sockets of one call and the address rule they were opened under."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cut = False

    def track(self, sock: socket.socket) -> None:
        """Remember a socket of this call (the TLS socket too: wrapping detaches the plain one)."""
        with self._lock:
            self._sockets.append(sock)
            cut = self._cut
        if cut:
            _shutdown(sock)

    def connect(self, host: str, port: int, timeout: Any, options: Any) -> socket.socket:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        for info in infos:
            if not address_allowed(str(info[4][0]), self.allow_private):
                raise AddressRefused(f"{host} resolves to a non-public address")
        error: OSError | None = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            with self._lock:
                if self._cut:
                    sock.close()
                    raise OSError("the call's deadline has passed")
                self._sockets.append(sock)
            try:
                for option in options or ():
                    sock.setsockopt(*option)
                if isinstance(timeout, (int, float)):
                    sock.settimeout(timeout)
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError("no address to connect to")

    def cut(self) -> None:
        """Shut down every socket of this call: blocked reads and writes return at once."""
        with self._lock:
            self._cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, also on a TLS socket: SSLSocket.shutdown would drop its SSL
        # object under the thread still reading it. A closed socket has no descriptor (-1): no
        # risk of touching a descriptor the process has since reused.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _connection_class(base: Any, guard: _Guard) -> type:
    def _new_conn(self: Any) -> socket.socket:
        try:
            return guard.connect(self._dns_host, self.port, self.timeout, self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"failed to establish a new connection: {type(exc).__name__}") from exc

    def connect(self: Any) -> None:
        base.connect(self)
        if self.sock is not None:
            guard.track(self.sock)  # the TLS socket, which http.client may drop before the body is read

    return type(f"Guarded{base.__name__}", (base,), {"_new_conn": _new_conn, "connect": connect})


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, guard: _Guard, pool_size: int) -> None:
        self._guard = guard
        super().__init__(pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_pool = type("GuardedHTTPPool", (urllib3.connectionpool.HTTPConnectionPool,),
                         {"ConnectionCls": _connection_class(urllib3.connection.HTTPConnection, self._guard)})
        https_pool = type("GuardedHTTPSPool", (urllib3.connectionpool.HTTPSConnectionPool,),
                          {"ConnectionCls": _connection_class(urllib3.connection.HTTPSConnection, self._guard)})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}


class EgressSession:
    """A requests Session for one call: vetted connections, no proxies, no cookies, cuttable."""

    def __init__(self, allow_private: bool, pool_size: int) -> None:
        self.guard = _Guard(allow_private)
        self.session = requests.Session()
        # No proxy or .netrc from the environment: a proxy would make the address check moot.
        # A CA bundle named there is still honoured (a private CA for the EHR's FHIR server).
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # no state between fetches
        adapter = _GuardedAdapter(self.guard, pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def cut(self) -> None:
        self.guard.cut()

    def close(self) -> None:
        self.guard.cut()
        self.session.close()
