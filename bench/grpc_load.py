"""A gRPC load generator: `python -m bench.grpc_load TARGET --api v2|tfserving -c 16 -z 8`.

hey speaks HTTP/1.1 only, and ghz cannot be installed from the registries this project uses, so this
is the gRPC counterpart: `--processes` processes, each running its share of the `-c` concurrent
callers on one grpc.aio channel, each caller sending the same request back to back for `-z` seconds
(or until SIGINT), like hey. It prints one JSON summary: answers by status code, and latency
percentiles of the OK ones. BENCHMARKS.md shows it against a no-op gRPC server, far above the rates
it measures here, so it is not the bottleneck.
"""

import argparse
import asyncio
import json
import multiprocessing
import signal
import sys
import time
from collections import Counter
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np

IMAGE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "seven.json"


def _request(api: str, model: str) -> tuple[str, Any, Any]:
    """(method path, request message, response class) for one image of the README's seven."""
    pixels = np.asarray(json.loads(IMAGE.read_text())["image"], dtype="<f4").reshape(1, 784)
    if api == "v2":
        from contract.protos import open_inference_grpc_pb2 as pb

        tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=[1, 784])
        request = pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[pixels.tobytes()])
        return "/inference.GRPCInferenceService/ModelInfer", request, pb.ModelInferResponse
    from contract.protos.tensorflow_serving.apis import predict_pb2

    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = model
    tensor = predict.inputs["pixels"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=784)
    tensor.tensor_content = pixels.tobytes()
    return "/tensorflow.serving.PredictionService/Predict", predict, predict_pb2.PredictResponse


async def _callers(args: argparse.Namespace, share: int, stop: Event) -> tuple[Counter[str], list[float], float]:
    """What the callers got, their latencies, and how long they called (imports not counted)."""
    import grpc

    method, request, response = _request(args.api, args.model)
    codes: Counter[str] = Counter()
    latencies: list[float] = []
    started = time.monotonic()
    deadline = started + args.duration
    async with grpc.aio.insecure_channel(args.target) as channel:
        call = channel.unary_unary(method, request_serializer=type(request).SerializeToString,
                                   response_deserializer=response.FromString)  # fmt: skip

        async def caller() -> None:
            while time.monotonic() < deadline and not stop.is_set():
                started = time.perf_counter()
                try:
                    await call(request, timeout=args.timeout)
                    latencies.append(time.perf_counter() - started)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as e:
                    codes[e.code().name] += 1

        await asyncio.gather(*(caller() for _ in range(share)))
    return codes, latencies, time.monotonic() - started


def _process(args: argparse.Namespace, share: int, stop: Event, results: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    results.put(asyncio.run(_callers(args, share, stop)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_load", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the gRPC server")
    parser.add_argument("--api", choices=["v2", "tfserving"], default="v2", help="ModelInfer or Predict")
    parser.add_argument("--model", default="mnist")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-z", "--duration", type=float, default=8.0, help="seconds (SIGINT stops sooner)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of each call, seconds")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    shares = [len(range(i, args.concurrency, args.processes)) for i in range(min(args.processes, args.concurrency))]
    workers = [context.Process(target=_process, args=(args, share, stop, results)) for share in shares]
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for worker in workers:
        worker.start()
    collected = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    codes = sum((c for c, _, _ in collected), Counter())
    latencies = np.array([s for _, ls, _ in collected for s in ls]) * 1000
    elapsed = max(seconds for _, _, seconds in collected)
    summary = {
        "requests": sum(codes.values()),
        "codes": dict(codes),
        "seconds": round(elapsed, 3),
        "rps": codes["OK"] / elapsed,
        "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
