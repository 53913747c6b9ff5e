"""Inference over gRPC needs an API key, as over REST (`service.security.keys`): the calls that run a model
(TF Serving's Predict, Classify, Regress and MultiInference, v2's ModelInfer) without one of the keys in
`authorization` (`Bearer <key>`) or `x-api-key` metadata end UNAUTHENTICATED before their message is read.
Health, reflection and metadata stay open, as they do over REST."""

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from service.security.keys import API_KEY, AUTHORIZATION, REFUSAL, ApiKeys, presented

INFERENCE_METHODS = frozenset(
    {
        *(f"/tensorflow.serving.PredictionService/{m}" for m in ("Predict", "Classify", "Regress", "MultiInference")),
        "/inference.GRPCInferenceService/ModelInfer",
    }
)


class RequireApiKey(grpc.aio.ServerInterceptor):
    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys
        self._refuse: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(_refuse)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        if details.method in INFERENCE_METHODS:
            sent = {
                k: v
                for k, v in details.invocation_metadata or ()
                if k in (AUTHORIZATION, API_KEY) and isinstance(v, str)
            }
            if not self._keys.accepts(presented(sent.get(AUTHORIZATION), sent.get(API_KEY))):
                return self._refuse
        return await continuation(details)


async def _refuse(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
