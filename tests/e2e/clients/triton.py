"""`python triton.py HOST:PORT IMAGES.npy VERSION`, in a virtualenv with tritonclient[grpc]: Triton's own client
checks liveness, reads the model's metadata, and infers raw (its `infer`), typed (its own protos,
fp32_contents) and the top 3 classes (`class_count`); prints what came back as JSON (probabilities as
uint32 bits)."""

import json
import sys

import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc


def main(target: str, images: str, version: str) -> None:
    x = np.load(images).astype(np.float32)
    client = triton.InferenceServerClient(url=target)
    metadata = client.get_model_metadata("mnist", as_json=True)
    tensor = triton.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    raw = client.infer("mnist", [tensor], outputs=[triton.InferRequestedOutput("probabilities")], model_version=version)
    top = client.infer("mnist", [tensor], outputs=[triton.InferRequestedOutput("probabilities", class_count=3)])
    typed_input = service_pb2.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=list(x.shape))
    typed_input.contents.fp32_contents.extend(x.ravel().tolist())
    with grpc.insecure_channel(target) as channel:
        typed = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            service_pb2.ModelInferRequest(model_name="mnist", inputs=[typed_input]), timeout=30
        )
    print(
        json.dumps(
            {
                "live": client.is_server_live(),
                "ready": client.is_model_ready("mnist"),
                "metadata_inputs": metadata["inputs"],
                "raw_bits": raw.as_numpy("probabilities").view(np.uint32).tolist(),
                "raw_version": raw.get_response(as_json=True)["model_version"],
                "typed_bits": np.asarray(typed.outputs[0].contents.fp32_contents, np.float32).view(np.uint32).tolist(),
                "top3": [[entry.decode() for entry in row] for row in top.as_numpy("probabilities")],
            }
        )
    )
    client.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
