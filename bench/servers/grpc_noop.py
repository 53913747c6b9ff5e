"""The gRPC limit: `python -m bench.servers.grpc_noop PORT`, a grpc.aio server whose ModelInfer decodes the
raw pixels and returns a fixed answer, no model. It shows what the load generator can drive."""

import asyncio
import sys

import grpc
import numpy as np

from contract.protos import open_inference_grpc_pb2 as pb
from contract.protos import open_inference_grpc_pb2_grpc as pb_grpc

_ANSWER = np.eye(1, 10, dtype="<f4").tobytes()


class NoOp(pb_grpc.GRPCInferenceServiceServicer):
    async def ServerLive(self, request: pb.ServerLiveRequest, context: object) -> pb.ServerLiveResponse:  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: object) -> pb.ModelInferResponse:  # noqa: N802
        np.frombuffer(request.raw_input_contents[0], "<f4")
        output = pb.ModelInferResponse.InferOutputTensor(name="probabilities", datatype="FP32", shape=[1, 10])
        return pb.ModelInferResponse(model_name=request.model_name, outputs=[output], raw_output_contents=[_ANSWER])


async def main(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(NoOp(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
