"""The bare endpoint: the same server and framework as the gate, answering a constant JSON 202.

What it is for: `flashgate bench flash-sale` serves it with the gate's server and process count
and drives it with the same load, so gate throughput / bare throughput says what admission,
Kafka handoff and the outbox cost on top of HTTP alone. Serve it by hand with:

    .venv/bin/granian --interface asgi --workers 2 --loop uvloop --port 8001 --factory bench.bare:create_app
"""

from __future__ import annotations

from litestar import Litestar, Request, Response, get, post

ANSWER = b'{"order_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","sku":"bare","qty":1,"status":"accepted"}'


@post("/v1/orders", status_code=202)
async def create_order(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    await request.body()  # read the body, as the gate does
    return Response(ANSWER, status_code=202, media_type="application/json")


@get("/health/ready")
async def ready() -> Response[bytes]:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app() -> Litestar:
    return Litestar(route_handlers=[create_order, ready], openapi_config=None)
