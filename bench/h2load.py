"""`h2load` (Debian's nghttp2-client) as a gRPC load generator: its command line, and what it measured.

ghz cannot be installed from the registries this project uses; h2load speaks HTTP/2 in C, so a
prebuilt gRPC message (`grpc_body`) posted with gRPC's headers is a unary call. It sees HTTP
statuses only, not `grpc-status` trailers: the bench reads the server's own count of gRPC statuses.
"""

import json
import re
import struct
from pathlib import Path

import numpy as np

IMAGE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "seven.json"
METHODS = {
    "v2": "/inference.GRPCInferenceService/ModelInfer",
    "tfserving": "/tensorflow.serving.PredictionService/Predict",
}


def grpc_body(api: str, model: str = "mnist") -> bytes:
    """One length-prefixed gRPC message: the README's seven, raw FP32, for `api`'s inference method."""
    pixels = np.asarray(json.loads(IMAGE.read_text())["image"], dtype="<f4").reshape(1, 784)
    if api == "v2":
        from contract.protos import open_inference_grpc_pb2 as pb

        tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=[1, 784])
        message = pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[pixels.tobytes()])
    else:
        from contract.protos.tensorflow_serving.apis import predict_pb2

        message = predict_pb2.PredictRequest()
        message.model_spec.name = model
        tensor = message.inputs["pixels"]
        tensor.dtype = 1  # DT_FLOAT
        tensor.tensor_shape.dim.add(size=1)
        tensor.tensor_shape.dim.add(size=784)
        tensor.tensor_content = pixels.tobytes()
    payload = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(payload)) + payload


def command(url: str, body: Path, concurrency: int, seconds: float, log: Path) -> list[str]:
    """`concurrency` connections, one call in flight on each, for `seconds`; every call logged to `log`."""
    return [
        "h2load", "-c", str(concurrency), "-m", "1", "-D", f"{round(seconds * 1000)}ms", "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", str(log), url,
    ]  # fmt: skip


def succeeded(summary: str) -> int:
    match = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", summary)
    return int(match.group(1)) if match else 0


def failed(summary: str) -> int:
    match = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", summary)
    return sum(int(n) for n in match.groups()) if match else 0


def percentile_ms(log: Path, p: int) -> float:
    """From h2load's log: one line per call, tab-separated, the third field its time in microseconds."""
    micros = [int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.count("\t") >= 2]
    return float(np.percentile(micros, p)) / 1000 if micros else float("nan")
