"""`python triton_tls.py HOST:PORT CA.pem KEY [CLIENT.pem CLIENT.key]`, in a virtualenv with tritonclient[grpc]:
Triton's own client over TLS (and mTLS, given a client certificate) infers a blank image with the API key
and without it; prints the digit, and the status of the call without a key, as JSON."""

import json
import sys

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException


def main(target: str, ca: str, key: str, client_cert: str | None = None, client_key: str | None = None) -> None:
    mutual = {}
    if client_cert and client_key:
        mutual = {"certificate_chain": client_cert, "private_key": client_key}
    client = triton.InferenceServerClient(url=target, ssl=True, root_certificates=ca, **mutual)
    pixels = triton.InferInput("pixels", [1, 784], "FP32")
    pixels.set_data_from_numpy(np.zeros((1, 784), np.float32))
    answer = client.infer("mnist", [pixels], headers={"authorization": f"Bearer {key}"})
    try:
        client.infer("mnist", [pixels])
        refused = None
    except InferenceServerException as e:
        refused = e.status()
    print(json.dumps({"digit": int(answer.as_numpy("probabilities").argmax()), "without_key": refused}))
    client.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
