"""`list` and `explain` name the allocation holding each device, asked of a local server answering as a Nomad agent.

The server speaks the three endpoints the CLI reads (agent self, the node's allocations) in the
shapes Nomad's HTTP API uses; the Nomad tier asks a real agent the same questions.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cli_support import RULES, run_cli, world  # noqa: F401  (world is a fixture)

from discovery.fake.testbed import Testbed

NODE_ID = "5b7f1b2e-9f3c-4c1a-8d55-0c5e2a9e7f10"
FTDI = "usb-0403-6001-A50285BI"
PIXEL = "usb-18d1-4ee7-29011FDH2000XY"
ARDUINO = "usb-2341-0043-85736323838351F0E1D1"


def alloc(alloc_id: str, job: str, devices: dict[str, list[str]], client: str = "running", desired: str = "run",
          namespace: str = "default") -> dict[str, Any]:
    """An allocation as /v1/node/<id>/allocations lists it: task name -> the device IDs it was given."""
    return {
        "ID": alloc_id, "Namespace": namespace, "JobID": job, "TaskGroup": "boards", "ClientStatus": client,
        "DesiredStatus": desired, "NodeID": NODE_ID,
        "AllocatedResources": {"Tasks": {task: {"Devices": [{"Vendor": "v", "Type": "t", "Name": "n",
                                                             "DeviceIDs": ids}]}
                                         for task, ids in devices.items()}},
    }


ALLOCATIONS = [
    alloc("0f1e2d3c-aaaa-bbbb-cccc-000000000001", "flash-board", {"flash": [FTDI]}),
    alloc("9a8b7c6d-aaaa-bbbb-cccc-000000000002", "android-tests", {"ui": [PIXEL]}, namespace="qa"),
    alloc("11112222-aaaa-bbbb-cccc-000000000003", "old-job", {"task": [ARDUINO]}, client="complete", desired="stop"),
]


class FakeAgent:
    """A Nomad agent's HTTP API on 127.0.0.1, just the parts the CLI reads; records what it was asked."""

    def __init__(self, *, token: str = "", client: bool = True, body: bytes | None = None,
                 tls: ssl.SSLContext | None = None, allocations: list[Any] | None = None,
                 self_answer: Any = None) -> None:
        self.requests: list[tuple[str, str | None]] = []
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                agent.requests.append((self.path, self.headers.get("X-Nomad-Token")))
                if token and self.headers.get("X-Nomad-Token") != token:
                    self._send(403, b"Permission denied", "text/plain")
                elif body is not None:
                    self._send(200, body, "text/html")
                elif self.path.split("?")[0] == "/v1/agent/self":
                    stats = {"client": {"node_id": NODE_ID}} if client else {"nomad": {"leader": "true"}}
                    answer = {"config": {"NodeName": "rack1-client3"}, "stats": stats}
                    self._send(200, json.dumps(answer if self_answer is None else self_answer).encode())
                elif self.path.split("?")[0] == f"/v1/node/{NODE_ID}/allocations":
                    self._send(200, json.dumps(ALLOCATIONS if allocations is None else allocations).encode())
                else:
                    self._send(404, b"Invalid URL", "text/plain")

            def _send(self, code: int, data: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.address = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    served = FakeAgent()
    yield served
    served.close()


def devices_of(out: str) -> dict[str, Any]:
    return {d["id"]: d for d in json.loads(out)["devices"]}


def test_list_names_the_allocation_holding_each_device(world: Testbed, agent: FakeAgent) -> None:
    """HELD BY shows the short ID and job/group for held devices, '-' for free ones; a finished allocation holds nothing."""
    run = run_cli("list", "--rules", RULES, "--wide", environ={"NOMAD_ADDR": agent.address})
    assert (run.code, run.err) == (0, "")
    rows = {line.split()[0]: line for line in run.out.splitlines()[1:12]}
    assert rows[FTDI].endswith("0f1e2d3c flash-board/boards")
    assert rows[PIXEL].endswith("9a8b7c6d qa:android-tests/boards")
    assert rows[ARDUINO].endswith("ok      -")
    assert run.out.splitlines()[-1] == (
        f"held by: 2 devices held by allocations on node rack1-client3 ({agent.address})")
    assert [path for path, _ in agent.requests] == ["/v1/agent/self", f"/v1/node/{NODE_ID}/allocations"]


def test_list_json_lists_allocations_and_the_agent(world: Testbed, agent: FakeAgent) -> None:
    """--json: each device's allocations (empty when free), and which agent and node answered."""
    run = run_cli("list", "--rules", RULES, "--json", environ={"NOMAD_ADDR": agent.address})
    document = json.loads(run.out)
    assert document["nomad"] == {"address": agent.address, "node_id": NODE_ID, "node_name": "rack1-client3",
                                 "error": None}
    devices = devices_of(run.out)
    assert devices[FTDI]["allocations"] == [{
        "alloc_id": "0f1e2d3c-aaaa-bbbb-cccc-000000000001", "short_id": "0f1e2d3c", "job": "flash-board",
        "task_group": "boards", "task": "flash", "namespace": "default", "client_status": "running",
        "desired_status": "run",
    }]
    assert devices[ARDUINO]["allocations"] == []


def test_explain_says_who_holds_the_device(world: Testbed, agent: FakeAgent) -> None:
    """explain's RESULT has a 'held by' line; its JSON carries the allocations too."""
    run = run_cli("explain", FTDI, "--rules", RULES, environ={"NOMAD_ADDR": agent.address})
    assert run.code == 0
    assert "  held by    0f1e2d3c flash-board/boards (running, task flash)" in run.out.splitlines()
    free = run_cli("explain", ARDUINO, "--rules", RULES, environ={"NOMAD_ADDR": agent.address})
    assert "  held by    no allocation" in free.out.splitlines()
    document = json.loads(run_cli("explain", FTDI, "--rules", RULES, "--json",
                                  environ={"NOMAD_ADDR": agent.address}).out)
    assert document["device"]["allocations"][0]["job"] == "flash-board"
    assert document["nomad"]["node_id"] == NODE_ID


def test_holders_use_nomad_token_and_say_when_refused(world: Testbed) -> None:
    """NOMAD_TOKEN goes out as X-Nomad-Token; without it the agent's refusal is the one line, and list still works."""
    served = FakeAgent(token="s3cret")
    try:
        run = run_cli("list", "--rules", RULES, "--json", environ={"NOMAD_ADDR": served.address,
                                                                    "NOMAD_TOKEN": "s3cret"})
        assert devices_of(run.out)[FTDI]["allocations"][0]["short_id"] == "0f1e2d3c"
        assert {token for _, token in served.requests} == {"s3cret"}
        refused = run_cli("list", "--rules", RULES, environ={"NOMAD_ADDR": served.address})
    finally:
        served.close()
    assert (refused.code, refused.err) == (0, "")
    assert refused.out.splitlines()[-1] == (
        f"held by: unknown, the Nomad agent at {served.address} answered /v1/agent/self with 403: Permission denied")
    assert "HELD BY" not in refused.out


@pytest.mark.parametrize(
    ("agent_kwargs", "message"),
    [
        pytest.param({"client": False}, "runs no client", id="server-only"),
        pytest.param({"body": b"<html>not nomad</html>"}, "is not JSON: is it a Nomad agent?", id="not-nomad"),
    ],
)
def test_holders_unknown_when_the_agent_cannot_say(world: Testbed, agent_kwargs: dict[str, Any], message: str) -> None:
    """A server-only agent, or something else on the port: one line why, devices listed, exit 0."""
    served = FakeAgent(**agent_kwargs)
    try:
        run = run_cli("list", "--rules", RULES, "--json", environ={"NOMAD_ADDR": served.address})
    finally:
        served.close()
    document = json.loads(run.out)
    assert run.code == 0 and message in document["nomad"]["error"]
    assert all(d["allocations"] is None for d in document["devices"])



def odd(**fields: Any) -> dict[str, Any]:
    """A live allocation with some of its fields in shapes Nomad never sends."""
    return {"ID": "0ddba11-0000", "JobID": "odd", "TaskGroup": "g", "ClientStatus": "running", **fields}


@pytest.mark.parametrize("answers", [
    pytest.param({"allocations": [*ALLOCATIONS, odd(AllocatedResources="x"), odd(AllocatedResources={"Tasks": [1]}),
                                  odd(AllocatedResources={"Tasks": {"t": {"Devices": [None, "d"]}}}),
                                  odd(AllocatedResources={"Tasks": {"t": {"Devices": [{"DeviceIDs": FTDI}]}}}),
                                  odd(AllocatedResources={"Tasks": {"t": "x"}}), 7, None]}, id="odd-allocations"),
    pytest.param({"self_answer": {"config": [], "stats": {"client": {"node_id": NODE_ID}}}}, id="odd-config"),
    pytest.param({"self_answer": {"stats": "client"}}, id="odd-stats"),
    pytest.param({"self_answer": [1, 2]}, id="self-a-list"),
])
def test_holders_skip_shapes_nomad_never_sends(world: Testbed, answers: dict[str, Any]) -> None:
    """JSON in shapes Nomad never sends is skipped (or said to be no client), never a traceback; exit 0."""
    served = FakeAgent(**answers)
    try:
        run = run_cli("list", "--rules", RULES, "--json", environ={"NOMAD_ADDR": served.address})
    finally:
        served.close()
    assert (run.code, run.err) == (0, "")
    document = json.loads(run.out)
    if "allocations" in answers or "config" in answers.get("self_answer", {}):
        assert document["nomad"]["error"] is None
        assert [h["job"] for h in devices_of(run.out)[FTDI]["allocations"]] == ["flash-board"]  # a string is no ID list
    else:
        assert "runs no client" in document["nomad"]["error"]

def test_holders_without_an_agent_exit_0_without_a_traceback(world: Testbed) -> None:
    """No agent listening: the devices are listed, one line says so, nothing goes to stderr."""
    run = run_cli("list", "--rules", RULES)  # NOMAD_ADDR: cli_support's port with nothing behind it
    assert (run.code, run.err) == (0, "")
    assert run.out.splitlines()[-1] == "held by: unknown, no Nomad agent at http://127.0.0.1:9 (connection refused)"


def test_holders_address_that_is_not_http(world: Testbed) -> None:
    """A NOMAD_ADDR the CLI cannot use is named in the one line."""
    run = run_cli("list", "--rules", RULES, environ={"NOMAD_ADDR": "unix:///run/nomad.sock"})
    assert run.code == 0 and "NOMAD_ADDR 'unix:///run/nomad.sock' is not an http:// or https:// address" in run.out


def test_holders_ignore_proxies_for_a_local_agent(world: Testbed, agent: FakeAgent,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY does not divert requests to a loopback agent (as Go's client under the nomad CLI does)."""
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    run = run_cli("list", "--rules", RULES, "--json", environ={"NOMAD_ADDR": agent.address})
    assert json.loads(run.out)["nomad"]["error"] is None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "agent.pem", folder / "agent-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=client.global.nomad", "-addext", "subjectAltName=IP:127.0.0.1,DNS:client.global.nomad",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def test_holders_over_tls_verify_with_nomad_cacert(world: Testbed, certificate: tuple[Path, Path]) -> None:
    """https agents: NOMAD_CACERT verifies; without it the TLS failure is the line; NOMAD_SKIP_VERIFY=1 skips."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    served = FakeAgent(tls=context)
    try:
        def error(**env: str) -> str | None:
            run = run_cli("list", "--rules", RULES, "--json", environ={"NOMAD_ADDR": served.address, **env})
            assert run.code == 0
            return json.loads(run.out)["nomad"]["error"]

        assert error(NOMAD_CACERT=str(cert)) is None
        assert error(NOMAD_CACERT=str(cert), NOMAD_TLS_SERVER_NAME="client.global.nomad") is None
        unverified = error()
        assert unverified is not None and "failed: certificate verify failed: self-signed certificate" in unverified
        assert "NOMAD_CACERT" in unverified
        assert error(NOMAD_SKIP_VERIFY="1") is None
    finally:
        served.close()


def test_holders_send_nomad_region_and_namespace(world: Testbed, agent: FakeAgent) -> None:
    """NOMAD_REGION and NOMAD_NAMESPACE go out as the nomad CLI sends them: query parameters of every request."""
    run = run_cli("list", "--rules", RULES, "--json",
                  environ={"NOMAD_ADDR": agent.address, "NOMAD_REGION": "eu-west", "NOMAD_NAMESPACE": "qa"})
    assert json.loads(run.out)["nomad"]["error"] is None
    assert [path for path, _ in agent.requests] == [
        "/v1/agent/self?region=eu-west&namespace=qa", f"/v1/node/{NODE_ID}/allocations?region=eu-west&namespace=qa"]


@pytest.fixture(scope="module")
def agent_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, an agent certificate naming only client.global.nomad (no IP, as Nomad's own), and a client's."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    folder = tmp_path_factory.mktemp("pki")
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "agent", "agent-key", "cli", "cli-key")}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test nomad CA",
            "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))
    for name, subject, extension in (("agent", "/CN=client.global.nomad", "subjectAltName=DNS:client.global.nomad"),
                                     ("cli", "/CN=cli.global.nomad", "extendedKeyUsage=clientAuth")):
        request = folder / f"{name}.csr"
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(files[f"{name}-key"]),
                "-out", str(request))
        openssl("x509", "-req", "-in", str(request), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
                "-CAcreateserial", "-days", "2", "-extfile", str(folder / f"{name}.ext"), "-out", str(files[name]))
    return files


def test_holders_over_mutual_tls_with_server_name_and_client_certificate(
        world: Testbed, agent_pki: dict[str, Path]) -> None:
    """An agent whose certificate names no IP and that verifies clients: NOMAD_TLS_SERVER_NAME and
    NOMAD_CLIENT_CERT/NOMAD_CLIENT_KEY make it answer, and without either it does not."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(agent_pki["agent"], agent_pki["agent-key"])
    context.verify_mode = ssl.CERT_REQUIRED  # tls { verify_https_client = true }
    context.load_verify_locations(agent_pki["ca"])
    served = FakeAgent(tls=context)
    try:
        def error(**env: str) -> str | None:
            run = run_cli("list", "--rules", RULES, "--json",
                          environ={"NOMAD_ADDR": served.address, "NOMAD_CACERT": str(agent_pki["ca"]), **env})
            assert (run.code, run.err) == (0, "")
            return json.loads(run.out)["nomad"]["error"]

        no_name = error()
        assert no_name is not None and "not valid for '127.0.0.1'" in no_name and "NOMAD_TLS_SERVER_NAME" in no_name
        # Refused without a client certificate. (Under TLS 1.3 the agent's alert saying why may or may not
        # arrive before it hangs up, so only the refusal is certain, not the hint that quotes the alert.)
        assert error(NOMAD_TLS_SERVER_NAME="client.global.nomad") is not None
        assert error(NOMAD_TLS_SERVER_NAME="client.global.nomad", NOMAD_CLIENT_CERT=str(agent_pki["cli"]),
                     NOMAD_CLIENT_KEY=str(agent_pki["cli-key"])) is None
        wrong = error(NOMAD_TLS_SERVER_NAME="server.global.nomad", NOMAD_CLIENT_CERT=str(agent_pki["cli"]),
                      NOMAD_CLIENT_KEY=str(agent_pki["cli-key"]))
        assert wrong is not None and "not valid for 'server.global.nomad'" in wrong
    finally:
        served.close()


@pytest.mark.parametrize(("spelling", "skipped"), [
    ("1", True), ("t", True), ("True", True), ("TRUE", True),
    ("yes", False), ("on", False), ("tRUE", False), (" 1", False), ("0", False), ("false", False),
])
def test_holders_skip_verify_only_for_what_go_reads_as_true(
        world: Testbed, certificate: tuple[Path, Path], spelling: str, skipped: bool) -> None:
    """NOMAD_SKIP_VERIFY turns verification off only for the spellings Go's strconv.ParseBool takes as true,
    as in the nomad CLI: any other value leaves the certificate checked."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    served = FakeAgent(tls=context)
    try:
        run = run_cli("list", "--rules", RULES, "--json",
                      environ={"NOMAD_ADDR": served.address, "NOMAD_SKIP_VERIFY": spelling})
    finally:
        served.close()
    error = json.loads(run.out)["nomad"]["error"]
    if skipped:
        assert error is None
    else:
        assert error is not None and "certificate verify failed: self-signed certificate" in error
