"""A small read-only client of the local Nomad agent's HTTP API, set up from the environment as the nomad CLI is.

The same variables as ``nomad``: ``NOMAD_ADDR`` (default ``http://127.0.0.1:4646``), ``NOMAD_TOKEN``,
``NOMAD_REGION``, ``NOMAD_NAMESPACE``, ``NOMAD_HTTP_AUTH`` (``user:password``), and for TLS
``NOMAD_CACERT`` / ``NOMAD_CAPATH``, ``NOMAD_CLIENT_CERT`` / ``NOMAD_CLIENT_KEY``,
``NOMAD_SKIP_VERIFY`` and ``NOMAD_TLS_SERVER_NAME``. Like Go's HTTP client under the nomad CLI, a
proxy from ``HTTP(S)_PROXY`` is used for remote agents and never for loopback. Only GETs of JSON;
every failure is a :class:`NomadApiError` whose message is one line for a person.

Why not python-nomad (2.1.0): it verifies no certificate unless told to and reads none of the
CA or skip-verify variables, so the TLS half of the environment would be ours to map anyway; it
brings requests, urllib3, idna, charset-normalizer and certifi (about 3.5 MB) into the plugin's
virtualenv on every Nomad client for three GET requests; and importing it took about 100 ms here
against about 40 ms for urllib. This module is imported only when a command needs the agent.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_ADDRESS = "http://127.0.0.1:4646"
TIMEOUT_S = 3.0
MAX_BODY = 64 * 1024 * 1024  # a node with thousands of allocations is a few MB


class NomadApiError(Exception):
    """The agent could not be asked, or it refused or gave no usable answer; the message says which."""


# What Go's strconv.ParseBool reads as true: the nomad CLI skips verification for these spellings
# only ("yes", "on", " 1" or "tRUE" leave it on there, so they must here too).
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def _go_true(text: str | None) -> bool:
    return text in GO_TRUE


@dataclass(frozen=True)
class AgentSettings:
    """How to reach the agent, from the nomad CLI's environment variables."""

    address: str = DEFAULT_ADDRESS
    token: str = ""
    region: str = ""
    namespace: str = ""
    http_auth: str = ""
    ca_cert: str = ""
    ca_path: str = ""
    client_cert: str = ""
    client_key: str = ""
    skip_verify: bool = False
    tls_server_name: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AgentSettings:
        def get(name: str) -> str:
            return environ.get(name, "").strip()

        return cls(
            address=(get("NOMAD_ADDR") or DEFAULT_ADDRESS).rstrip("/"),
            token=get("NOMAD_TOKEN"),
            region=get("NOMAD_REGION"),
            namespace=get("NOMAD_NAMESPACE"),
            http_auth=environ.get("NOMAD_HTTP_AUTH", ""),
            ca_cert=get("NOMAD_CACERT"),
            ca_path=get("NOMAD_CAPATH"),
            client_cert=get("NOMAD_CLIENT_CERT"),
            client_key=get("NOMAD_CLIENT_KEY"),
            skip_verify=_go_true(environ.get("NOMAD_SKIP_VERIFY")),
            tls_server_name=get("NOMAD_TLS_SERVER_NAME"),
        )


class AgentApi:
    """GET requests to one agent; the answer's JSON, or NomadApiError."""

    def __init__(self, settings: AgentSettings, timeout: float = TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(settings.address if "://" in settings.address else f"http://{settings.address}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise NomadApiError(f"NOMAD_ADDR {settings.address!r} is not an http:// or https:// address")
        self.base = f"{parsed.scheme}://{parsed.netloc}"
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.ProxyHandler({} if _is_loopback(parsed.hostname) else None),
        ]
        if parsed.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self._tls_context()))
        self._opener = urllib.request.build_opener(*handlers)

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        try:
            context = ssl.create_default_context(cafile=s.ca_cert or None, capath=s.ca_path or None)
            if s.client_cert:
                context.load_cert_chain(s.client_cert, s.client_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise NomadApiError(f"TLS settings (NOMAD_CACERT, NOMAD_CLIENT_CERT, ...) cannot be used: {exc}") from exc
        if s.skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif s.tls_server_name:
            server_name = s.tls_server_name
            wrap = context.wrap_socket

            def wrap_with_name(sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
                kwargs["server_hostname"] = server_name  # check the certificate against this name
                return wrap(sock, *args, **kwargs)

            context.wrap_socket = wrap_with_name  # type: ignore[method-assign]
        return context

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """The JSON answer of ``GET path`` (region and namespace added as the nomad CLI adds them)."""
        query = dict(params or {})
        if self.settings.region:
            query.setdefault("region", self.settings.region)
        if self.settings.namespace:
            query.setdefault("namespace", self.settings.namespace)
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.settings.token:
            request.add_header("X-Nomad-Token", self.settings.token)
        if self.settings.http_auth:
            credentials = base64.b64encode(self.settings.http_auth.encode()).decode()
            request.add_header("Authorization", f"Basic {credentials}")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode("utf-8", "replace").strip().splitlines()
            said = detail[0] if detail else exc.reason
            raise NomadApiError(f"the Nomad agent at {self.base} answered {path} with {exc.code}: {said}") from None
        except (urllib.error.URLError, OSError) as exc:
            cause: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(cause, ssl.SSLError):  # something answers, but not in a way we may trust
                raise NomadApiError(f"TLS with {self.base} failed: {_tls_why(cause)}") from None
            raise NomadApiError(f"no Nomad agent at {self.base} ({_why(cause)})") from None
        if len(body) > MAX_BODY:
            raise NomadApiError(f"the answer to {path} is larger than {MAX_BODY} bytes")
        try:
            return json.loads(body)
        except ValueError:
            raise NomadApiError(f"the answer of {self.base} to {path} is not JSON: is it a Nomad agent?") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# OpenSSL's verify codes for a certificate that is good but names another host or IP address.
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _tls_why(error: ssl.SSLError) -> str:
    """The TLS failure in a line, with the variable that most likely answers it."""
    if isinstance(error, ssl.SSLCertVerificationError):
        hint = ("set NOMAD_TLS_SERVER_NAME to a name in it, e.g. client.global.nomad"
                if error.verify_code in _NAME_MISMATCH else "set NOMAD_CACERT, or NOMAD_SKIP_VERIFY=1")
        return f"certificate verify failed: {error.verify_message} ({hint})"
    reason = str(error.reason or error)
    if "CERTIFICATE_REQUIRED" in reason:  # the agent verifies clients (tls.verify_https_client)
        return f"the agent asks for a client certificate: set NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY ({reason})"
    return reason


def _why(reason: Any) -> str:
    """The short reason of a connection failure: "connection refused", "timed out", the OS's words."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason)
