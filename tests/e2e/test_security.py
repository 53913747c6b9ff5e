"""Transport security and API keys on a real server process: HTTPS and gRPC over TLS with a CA the test
makes, mTLS on both ports, certificates rotated while serving without dropping a connection, and inference
that needs a key at every door, through httpx, grpcio and both of Triton's clients."""

import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.protos import open_inference_grpc_pb2 as v2_pb2
from contract.protos import open_inference_grpc_pb2_grpc as v2_grpc
from service.security.keys import REFUSAL, digest_line
from tests.e2e.server import CLIENTS, REPO_ROOT, ServerProcess
from tests.pki import Authority, Issued, write

pytestmark = pytest.mark.e2e

KEY = "plain-key-for-the-tests-0123"
HASHED_KEY = "hashed-key-for-the-tests-4567"  # the file holds its digest only
ROTATION_DEADLINE_S = 60.0
BLANK = {"images": [[0] * 784]}


@dataclass(frozen=True)
class Pki:
    ca: Authority
    server: Issued
    client: Issued
    other_ca: Authority  # a second authority, for a rotation that changes CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = Authority(folder, "first")
    return Pki(ca, ca.issue("server", server=True), ca.issue("client", server=False), Authority(folder, "second"))


def trusting(ca: Authority, client: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca.cert)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def grpc_channel(server: ServerProcess, ca: Authority, client: Issued | None = None) -> grpc.Channel:
    identity = (
        {}
        if client is None
        else {"private_key": client.key.read_bytes(), "certificate_chain": client.cert.read_bytes()}
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert.read_bytes(), **identity)
    return grpc.secure_channel(server.grpc_target, credentials)


def infer(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> int:
    tensor = v2_pb2.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=[1, 784])
    tensor.contents.fp32_contents.extend([0.0] * 784)
    response = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
        v2_pb2.ModelInferRequest(model_name="mnist", inputs=[tensor]), metadata=metadata, timeout=30
    )
    probabilities = next(o for o in response.outputs if o.name == "probabilities").contents.fp32_contents
    return int(np.argmax(probabilities))


def served_serial(server: ServerProcess) -> int:
    """The serial number of the certificate that a new connection to the REST port is shown (read, not
    trusted: which CA it verifies against is for the clients under test to find out)."""
    looking = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    looking.check_hostname = False
    looking.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with looking.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + ROTATION_DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {ROTATION_DEADLINE_S:g}s: {what}"
        time.sleep(0.2)


def tls_server(tmp_path_factory: pytest.TempPathFactory, tls: ssl.SSLContext, **settings: object) -> ServerProcess:
    """A server of the committed models, not started yet, that clients reach over HTTPS with `tls`."""
    log = tmp_path_factory.mktemp("logs") / "server.log"
    return ServerProcess(REPO_ROOT / "models", log, tls=tls, poll_interval_s=0, versions_to_keep=1, **settings)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServerProcess]:
    """TLS, and API keys for inference."""
    keys = tmp_path_factory.mktemp("keys") / "api-keys"
    keys.write_text(f"# inference keys\n{KEY}\n\n{digest_line(HASHED_KEY)}\n")
    with tls_server(
        tmp_path_factory,
        trusting(pki.ca),
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        api_keys_file=keys,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def mutual(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServerProcess]:
    """mTLS: clients must show a certificate that the CA signed."""
    with tls_server(
        tmp_path_factory,
        trusting(pki.ca, pki.client),
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        tls_client_ca_file=pki.ca.cert,
    ) as server:
        yield server


def test_https_with_the_ca_and_a_key_answers_with_either_header(keyed: ServerProcess, pki: Pki) -> None:
    with httpx.Client(base_url=keyed.url, verify=trusting(pki.ca), timeout=30) as client:
        bearer = client.post("/predict", json=BLANK, headers={"Authorization": f"Bearer {KEY}"})
        api_key = client.post("/predict", json=BLANK, headers={"X-API-Key": HASHED_KEY})
    assert bearer.status_code == api_key.status_code == 200, (bearer.text, api_key.text)
    assert bearer.json()["predictions"] == api_key.json()["predictions"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", BLANK),
        ("/v1/models/mnist:predict", {"instances": [[0] * 784]}),
        ("/v1/models/mnist:explain", {"instances": [[0] * 784]}),
        (
            "/v2/models/mnist/infer",
            {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}]},
        ),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-key-of-this-server"}, {"X-API-Key": KEY[:-1]}])
def test_inference_without_a_valid_key_gets_401_at_every_rest_door(
    keyed: ServerProcess, pki: Pki, path: str, body: object, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{keyed.url}{path}", json=body, headers=headers, verify=trusting(pki.ca), timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": REFUSAL}


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/static/app.js",
        "/v2/health/ready",
        "/v1/models/mnist",
        "/v2/models/mnist",
    ],
)
def test_health_metadata_metrics_and_the_page_need_no_key(keyed: ServerProcess, pki: Pki, path: str) -> None:
    assert httpx.get(f"{keyed.url}{path}", verify=trusting(pki.ca), timeout=30).status_code == 200


def test_plain_http_to_the_https_port_gets_no_answer(keyed: ServerProcess) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(keyed.url.replace("https://", "http://") + "/readyz", timeout=10)


def test_grpc_over_tls_infers_with_a_key_and_refuses_without(keyed: ServerProcess, pki: Pki) -> None:
    with grpc_channel(keyed, pki.ca) as channel:
        assert infer(channel, (("authorization", f"Bearer {KEY}"),)) in range(10)
        assert infer(channel, (("x-api-key", HASHED_KEY),)) in range(10)
        with pytest.raises(grpc.RpcError) as refused:
            infer(channel)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == REFUSAL
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(keyed.grpc_target) as plain, pytest.raises(grpc.RpcError) as refused:
        infer(plain, (("authorization", f"Bearer {KEY}"),))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tritons_clients_work_over_tls_on_both_transports(keyed: ServerProcess, pki: Pki, client_python: Path) -> None:
    client = triton.InferenceServerClient(
        f"127.0.0.1:{keyed.port}", ssl=True, ssl_options={"ca_certs": str(pki.ca.cert)}
    )
    pixels = triton.InferInput("pixels", [1, 784], "FP32")
    pixels.set_data_from_numpy(np.zeros((1, 784), np.float32))
    answer = client.infer("mnist", [pixels], headers={"Authorization": f"Bearer {KEY}"})
    assert answer.as_numpy("probabilities").shape == (1, 10)
    client.close()
    run = subprocess.run(
        [client_python, CLIENTS / "triton_tls.py", keyed.grpc_target, pki.ca.cert, KEY],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    grpc_answer = json.loads(run.stdout.splitlines()[-1])
    assert grpc_answer == {
        "digit": int(answer.as_numpy("probabilities").argmax()),
        "without_key": "StatusCode.UNAUTHENTICATED",
    }


def test_mtls_turns_away_a_client_without_a_certificate_on_both_ports(mutual: ServerProcess, pki: Pki) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{mutual.url}/readyz", verify=trusting(pki.ca), timeout=10)
    assert httpx.get(f"{mutual.url}/readyz", verify=trusting(pki.ca, pki.client), timeout=10).status_code == 200
    with grpc_channel(mutual, pki.ca) as anonymous, pytest.raises(grpc.RpcError) as refused:
        infer(anonymous)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc_channel(mutual, pki.ca, pki.client) as identified:
        assert infer(identified) in range(10)


def test_tritons_grpc_client_works_under_mtls(mutual: ServerProcess, pki: Pki, client_python: Path) -> None:
    run = subprocess.run(
        [
            client_python,
            CLIENTS / "triton_tls.py",
            mutual.grpc_target,
            pki.ca.cert,
            "no-keys-here",
            pki.client.cert,
            pki.client.key,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.splitlines()[-1])["without_key"] is None  # keys are off on this server


def test_rotated_certificates_reach_new_connections_and_spare_open_ones(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> None:
    folder = tmp_path_factory.mktemp("rotating")
    live = Issued(folder / "tls.crt", folder / "tls.key", pki.server.serial)
    write(live, pki.server.cert.read_bytes(), pki.server.key.read_bytes())
    first = trusting(pki.ca)
    server = tls_server(tmp_path_factory, first, tls_cert_file=live.cert, tls_key_file=live.key)
    with server, httpx.Client(base_url=server.url, verify=first, timeout=30) as kept:
        assert kept.get("/readyz").status_code == 200  # a connection opened before the rotation

        renewed = pki.ca.issue("renewed", server=True)  # the same CA: a routine renewal
        write(live, renewed.cert.read_bytes(), renewed.key.read_bytes())
        wait_for(lambda: served_serial(server) == renewed.serial, "new connections see the renewed certificate")
        stream = kept.get("/readyz")
        assert stream.status_code == 200
        old = stream.extensions["network_stream"].get_extra_info("ssl_object").getpeercert(True)
        assert x509.load_der_x509_certificate(old).serial_number == pki.server.serial  # the same connection

        moved = pki.other_ca.issue("moved", server=True)  # a new CA: gRPC's new connections must follow
        write(live, moved.cert.read_bytes(), moved.key.read_bytes())
        wait_for(lambda: served_serial(server) == moved.serial, "new connections see the new CA's certificate")
        assert httpx.get(f"{server.url}/readyz", verify=trusting(pki.other_ca), timeout=10).status_code == 200
        with grpc_channel(server, pki.other_ca) as following:
            assert infer(following) in range(10)
        with grpc_channel(server, pki.ca) as stale, pytest.raises(grpc.RpcError):
            infer(stale)

        live.key.write_text("not a key\n")  # a botched rotation: the server keeps what it has
        wait_for(lambda: "kept the secret in use" in server.logs(), "the unusable key is reported")
        assert served_serial(server) == moved.serial
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: '"cause":"SIGHUP"' in server.logs(), "SIGHUP re-reads the files")


def test_an_unreadable_certificate_stops_the_server_at_start_with_a_sentence(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> None:
    missing = pki.server.cert.with_name("missing.pem")
    with pytest.raises(RuntimeError, match="exited with 3") as failed:
        tls_server(tmp_path_factory, trusting(pki.ca), tls_cert_file=missing, tls_key_file=pki.server.key).start()
    assert f"the TLS certificate file {missing} cannot be read" in str(failed.value)


def test_the_openapi_document_says_which_operations_need_a_key(keyed: ServerProcess, pki: Pki) -> None:
    schema = httpx.get(f"{keyed.url}/openapi.json", verify=trusting(pki.ca), timeout=30).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    secured = {
        (path, method)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert ("/predict", "post") in secured and ("/v2/models/{name}/infer", "post") in secured
    assert ("/v1/models/{name}:explain", "post") in secured and ("/readyz", "get") not in secured
    assert all("401" in schema["paths"][path][method]["responses"] for path, method in secured)
    assert ("/feedback", "post") in secured and ("/feedback", "get") not in secured
    # /predict; TF Serving's predict and explain, three forms each; v2's infer, two; and POST /feedback
    assert len(secured) == 10
