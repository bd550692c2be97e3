"""The HTTP face of :class:`~retrainer.deployments.serving.serving.PredictionService` (FastAPI).

Routes::

    POST /predict     {"features": {...}} or {"instances": [{...}, ...]}, optional unit_id, request_id
    POST /feedback    {"request_id": "...", "label": 1} or {"labels": [{...}, ...]}
                      -> {"written", "unknown_request_ids": [...], "clamped_request_ids": [...]}
    GET  /health      liveness (the process answers)
    GET  /ready       readiness (a champion is loaded): 200 or 503
    GET  /metrics     Prometheus text
    GET  /admin/status    routing, log writer and live shadow statistics
    POST /admin/reload    re-read aliases / A/B / shadow state now

With ``serving.api_token`` (or ``RETRAINER_API_TOKEN``) set, predict, feedback and admin routes
need ``Authorization: Bearer <token>``. Request bodies above ``serving.max_body_bytes`` get 413;
invalid ones a 422 whose ``detail`` names each offending field (``instances[3].income: ...``).
"""

# No `from __future__ import annotations`: FastAPI must see the request models defined in
# create_app as real classes, not as strings to resolve in module globals.

import asyncio
import hmac
import json
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from retrainer.config import FeatureSpec, RetrainerConfig
from retrainer.deployments.serving.metrics import CONTENT_TYPE
from retrainer.deployments.serving.serving import NotReady, PredictionService, request_ids, with_stored_answers
from retrainer.deployments.serving.writer import Commit, LogWriteFailed, committed as wait_committed
from retrainer.errors import ConfigError, ValidationError

_ID = Annotated[str, Field(min_length=1, max_length=200)]


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def number_type(coerce_strings: bool = False) -> Any:
    """A finite JSON number. Strict by default: ``"3.5"`` and ``true`` are refused (422 naming the
    field) rather than silently read as 3.5 and 1.0; ``serving.coerce_numeric_strings`` lets
    strings through, booleans never."""
    if not coerce_strings:
        return Annotated[float, Field(strict=True, allow_inf_nan=False)]
    return Annotated[float, BeforeValidator(_not_a_bool), Field(allow_inf_nan=False)]


def instance_model(features: Sequence[FeatureSpec], coerce_strings: bool = False) -> type[BaseModel]:
    """A pydantic model of one instance: the configured features, typed, nothing else."""
    fields: dict[str, Any] = {}
    number = number_type(coerce_strings)
    for i, f in enumerate(features):
        base: Any = number if f.type == "numeric" else Annotated[str, Field(max_length=1000)]
        # Internal names avoid clashes between feature names and BaseModel attributes.
        fields[f"f{i}"] = (base | None, Field(None, alias=f.name)) if f.nullable else (base, Field(alias=f.name))
    return create_model(  # type: ignore[call-overload,no-any-return]
        "Instance", __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields
    )


def request_models(
    features: Sequence[FeatureSpec], max_batch: int, max_labels: int, coerce_strings: bool = False
) -> tuple[type[BaseModel], type[BaseModel]]:
    Instance = instance_model(features, coerce_strings)
    number = number_type(coerce_strings)

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        features: Instance | None = None  # type: ignore[valid-type]
        instances: Annotated[list[Instance], Field(min_length=1, max_length=max_batch)] | None = None  # type: ignore[valid-type]
        unit_id: _ID | None = None
        request_id: _ID | None = None

        @model_validator(mode="after")
        def _one_form(self) -> Any:
            if (self.features is None) == (self.instances is None):
                raise ValueError("give exactly one of `features` (one instance) or `instances` (a batch)")
            return self

    class Label(BaseModel):
        model_config = ConfigDict(extra="forbid")
        request_id: _ID
        label: number  # type: ignore[valid-type]
        ts: datetime | None = None

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        request_id: _ID | None = None
        label: number | None = None  # type: ignore[valid-type]
        ts: datetime | None = None
        labels: Annotated[list[Label], Field(min_length=1, max_length=max_labels)] | None = None

        @model_validator(mode="after")
        def _one_form(self) -> Any:
            single = self.request_id is not None or self.label is not None
            if single == (self.labels is not None):
                raise ValueError("give either `request_id` + `label` (one label) or `labels` (a batch)")
            if single and (self.request_id is None or self.label is None):
                raise ValueError("a single label needs both `request_id` and `label`")
            return self

    return PredictRequest, FeedbackRequest


def _field_path(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(body)"


class BodyLimit:
    """Pure ASGI middleware: refuse bodies above ``limit`` bytes with 413, before parsing."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
                break
        else:
            # No Content-Length (chunked): buffer up to the limit here, then replay it to the app,
            # so an oversized body is refused before any parsing.
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    await self.app(scope, _replay([message]), send)
                    return
                body = message.get("body", b"")
                size += len(body)
                if size > self.limit:
                    await self._reject(send)
                    return
                chunks.append(body)
                more = message.get("more_body", False)
            buffered = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            await self.app(scope, _replay([buffered], receive), send)
            return
        await self.app(scope, receive, send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes (serving.max_body_bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Any], then: Any = None) -> Any:
    """A receive callable that returns ``messages`` first, then defers to ``then``."""
    pending = list(messages)

    async def receive() -> Any:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status_code=status, media_type="application/json")


def create_app(service: PredictionService, *, manage_lifecycle: bool = True) -> FastAPI:
    """The FastAPI app; with ``manage_lifecycle`` it starts and stops ``service`` in its lifespan."""
    cfg = service.cfg
    token = cfg.serving.api_token
    PredictRequest, FeedbackRequest = request_models(cfg.data.features, cfg.serving.max_batch, cfg.store.max_batch,
                                                   cfg.serving.coerce_numeric_strings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if manage_lifecycle:
            await run_in_threadpool(service.start)
        try:
            yield
        finally:
            if manage_lifecycle:
                await run_in_threadpool(service.stop)  # flushes the inference log

    app = FastAPI(title="retrainer", version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    metrics = service.metrics

    def unauthorized(request: Request) -> Response | None:
        if token is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        metrics.count_request(request.url.path.strip("/"), "unauthorized")
        return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for e in exc.errors():
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if e.get("type") == "extra_forbidden":
                msg = "unknown field (not one of the configured features)" if "features" in str(e.get("loc")) or \
                    "instances" in str(e.get("loc")) else "unknown field"
            errors.append({"field": _field_path(e.get("loc", ())), "message": msg})
        metrics.count_request(request.url.path.strip("/"), "invalid")
        summary = "; ".join(f"{x['field']}: {x['message']}" for x in errors[:10])
        return _json({"detail": f"invalid request: {summary}", "errors": errors}, 422)

    def not_stored(exc: LogWriteFailed) -> Response:
        metrics.count_request("predict", "not_stored")
        return _json({"detail": f"prediction not stored: {exc}"}, 503)

    async def committed(ticket: Commit | list[asyncio.Future[None]]) -> Response | frozenset[str]:
        """Wait (without blocking the loop) until the rows are durable: the spool's flushes, or the
        writer's group commit; a 503 if they could not be. Otherwise the request ids the group
        commit found already stored (a re-sent request; the spool path answered those itself)."""
        try:
            if isinstance(ticket, Commit):
                return await wait_committed(ticket)
            for ack in ticket:
                await ack
            return frozenset()
        except LogWriteFailed as exc:
            return not_stored(exc)

    async def answer_as_stored(out: dict[str, Any], duplicates: frozenset[str]) -> dict[str, Any]:
        """A re-sent request id gets the answer stored the first time, flagged, not a new one."""
        stored = await run_in_threadpool(service.stored_answers, sorted(duplicates))
        return with_stored_answers(out, stored)

    @app.post("/predict")
    async def predict(body: PredictRequest, request: Request) -> Response:  # type: ignore[valid-type]
        if (denied := unauthorized(request)) is not None:
            return denied
        single = body.features is not None  # type: ignore[attr-defined]
        items = [body.features] if single else body.instances  # type: ignore[attr-defined]
        instances = [i.model_dump(by_alias=True) for i in items]
        rid = body.request_id  # type: ignore[attr-defined]
        stored = None
        if rid is not None and service.spool is not None:
            # Spooled rows reach the store after the answer: a re-sent id is looked up first.
            stored = await run_in_threadpool(service.stored_answers, request_ids(len(instances), rid))
        try:
            out, overflow, commit = service.predict(instances, unit_id=body.unit_id, request_id=rid, stored=stored)  # type: ignore[attr-defined]
        except NotReady as exc:
            metrics.count_request("predict", "not_ready")
            return _json({"detail": f"not ready: {exc}"}, 503)
        except LogWriteFailed as exc:  # the spool is closed: the server is stopping
            return not_stored(exc)
        if overflow is not None:
            # The log is behind: wait for room off the event loop (backpressure, rows kept).
            await run_in_threadpool(service.writer.put, overflow)
        if commit is not None:
            outcome = await committed(commit)
            if isinstance(outcome, Response):
                return outcome
            if outcome:
                out = await answer_as_stored(out, outcome)
        if out.get("duplicate"):
            metrics.count_request("predict", "duplicate")
        if single:
            scores = out["scores"]
            return _json({
                "request_id": out["request_ids"][0], "prediction": out["predictions"][0],
                "score": None if scores is None else scores[0], "model_version": out["model_version"],
                "arm": out["arm"], **({"duplicate": True} if out.get("duplicate") else {}),
            })
        return _json(out)

    @app.post("/feedback")
    async def feedback(body: FeedbackRequest, request: Request) -> Response:  # type: ignore[valid-type]
        if (denied := unauthorized(request)) is not None:
            return denied
        if body.labels is not None:  # type: ignore[attr-defined]
            labels = [(x.request_id, x.label, x.ts) for x in body.labels]  # type: ignore[attr-defined]
        else:
            labels = [(body.request_id, body.label, body.ts)]  # type: ignore[attr-defined]
        try:
            result = await run_in_threadpool(service.feedback, labels)
        except ValidationError as exc:  # a label that is not a class, a time far in the future
            metrics.count_request("feedback", "invalid")
            return _json({"detail": "invalid request: " + "; ".join(exc.problems), "errors": exc.problems}, 422)
        metrics.count_request("feedback", "ok")
        return _json({"written": result.written, "unknown_request_ids": result.unknown_request_ids,
                      "clamped_request_ids": result.clamped_request_ids})

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        routing = service.router.routing
        if routing is None:
            return _json({"ready": False, "reason": service.router.stats.last_error or "loading models"}, 503)
        return _json({"ready": True, **routing.describe()})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/admin/status")
    async def status(request: Request) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        return _json(service.status())

    @app.post("/admin/reload")
    async def reload(request: Request) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        changed = await run_in_threadpool(service.router.refresh)
        return _json({"changed": changed, "routing": service.status()["routing"],
                      "last_error": service.router.stats.last_error})

    app.add_middleware(BodyLimit, limit=cfg.serving.max_body_bytes)
    return app


def check_exposure(host: str, token: str | None, *, insecure: bool = False) -> None:
    """Refuse to serve predict, feedback and admin without a token on an address others can reach.

    Anyone who can reach /feedback can rewrite the labels the triggers judge, and /admin/reload
    moves traffic: off loopback that needs ``serving.api_token`` (or ``RETRAINER_API_TOKEN``),
    or an explicit ``insecure`` (e.g. a private network behind an authenticating proxy).
    """
    import ipaddress

    if token or insecure:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"serving.host {host!r} is not loopback and no API token is set: set RETRAINER_API_TOKEN "
            "(or serving.api_token), bind 127.0.0.1, or pass --insecure if something else authenticates"
        )


def run_server(
    cfg: RetrainerConfig, *, host: str | None = None, port: int | None = None, log_level: str = "warning",
    insecure: bool = False,
) -> None:
    """``retrainer serve``: one uvicorn process (bind loopback unless told otherwise)."""
    import sys

    import uvicorn

    check_exposure(host or cfg.serving.host, cfg.serving.api_token, insecure=insecure)

    # Background threads (log writer, shadow dispatch) hold the GIL for up to the switch interval
    # (5 ms by default) before the event loop gets it back; 1 ms bounds that wait on requests.
    sys.setswitchinterval(0.001)
    service = PredictionService.from_config(cfg)
    if service.spool is not None:
        service.spool.open()  # an unusable spool directory is one line before uvicorn starts, not a traceback
    app = create_app(service)
    config = uvicorn.Config(
        app,
        host=host or cfg.serving.host,
        port=port or cfg.serving.port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()


__all__ = ["BodyLimit", "check_exposure", "create_app", "instance_model", "request_models", "run_server"]
