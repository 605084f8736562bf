"""Bearer-token authentication for the gRPC server (an aio server interceptor).

Clients send ``authorization: Bearer <token>`` metadata. Calls without it, or with another token,
end with UNAUTHENTICATED before any handler runs, unknown method names included (they answer
UNIMPLEMENTED only to a caller holding the token). The standard health service stays open so load
balancers and orchestrators can probe a server without holding the token. Tokens are compared in
constant time.
"""
from __future__ import annotations

import hmac

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


def _deny_handler(kind: str, message: str):
    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    factories = {
        "unary_unary": (grpc.unary_unary_rpc_method_handler, unary),
        "unary_stream": (grpc.unary_stream_rpc_method_handler, streaming),
        "stream_unary": (grpc.stream_unary_rpc_method_handler, unary),
        "stream_stream": (grpc.stream_stream_rpc_method_handler, streaming),
    }
    make, fn = factories[kind]
    return make(fn)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Reject calls whose ``authorization`` metadata is not ``Bearer <token>``."""

    def __init__(self, token: str):
        if not token:
            raise ValueError("token must not be empty")
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method or ""
        if method.startswith(OPEN_PREFIXES):
            return await continuation(handler_call_details)
        got = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                got = value if isinstance(value, str) else value.decode(errors="replace")
                break
        if hmac.compare_digest(got.encode(), self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        msg = "missing bearer token" if not got else "invalid bearer token"
        if handler is None:
            # an unknown method: without the token a caller learns nothing, not even that the
            # method does not exist (UNAUTHENTICATED, like a known one). A stream-stream handler
            # answers any call shape.
            return _deny_handler("stream_stream", msg)
        kind = ("stream" if handler.request_streaming else "unary") + "_" + \
               ("stream" if handler.response_streaming else "unary")
        return _deny_handler(kind, msg)
