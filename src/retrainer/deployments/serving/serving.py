"""The prediction service, without HTTP: route, predict, log, mirror.

:class:`PredictionService` is what the FastAPI app (:mod:`retrainer.deployments.serving.app`) calls.
It owns the :class:`~retrainer.deployments.serving.router.ModelRouter` (which model answers), the
:class:`~retrainer.deployments.serving.writer.InferenceLogWriter` (every prediction and its features
reach the store, off the request path) and the :class:`~retrainer.deployments.serving.shadow_queue.ShadowRunner`.

The request path does no I/O: it picks the arm by hashing the unit, predicts, and hands the
log rows and the shadow job to queues. When the log queue is full the rows come back as
``overflow`` for the caller to enqueue off the event loop (backpressure, never loss). With
``serving.durability: committed`` the caller awaits a ticket before answering: a
:class:`~retrainer.deployments.serving.writer.Commit` (``serving.commit: store``, the default: group
commit) or the :class:`~retrainer.deployments.serving.spool.PredictionSpool`'s fsync (``spool``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.ab import CHALLENGER_ARM, CHAMPION_ARM, bucket
from retrainer.deployments.serving.metrics import ServiceMetrics
from retrainer.deployments.rollout.promotion import resolve_champion
from retrainer.deployments.rollout.stages import shadow_target
from retrainer.deployments.serving.router import (
    ModelRouter,
    ServedModel,
    WantedState,
    registry_loader,
)
from retrainer.deployments.serving.shadow_queue import ShadowJob, ShadowRunner
from retrainer.deployments.serving.shadow_worker import ShadowModelSource
from retrainer.deployments.serving.spool import PredictionSpool, spool_directory
from retrainer.deployments.serving.writer import BUFFERED_LINGER, COMMIT_LINGER, SPOOL_LINGER, Assignment, Commit, InferenceLogWriter
from retrainer.errors import RetrainerError
from retrainer.registry import CHALLENGER, Registry
from retrainer.store import Store
from retrainer.store.records import LabelRecord, LabelWriteResult, PredictionRecord, to_epoch
from retrainer.store.validation import check_label_classes, raise_if

log = logging.getLogger(__name__)

_UTC = UTC
_SEEN_UNITS_MAX = 200_000  # assignments already queued, per process; duplicates are harmless anyway
# Request ids answered by this process (and rows replayed from the spool at start), newest
# last, with the row and its spool flush: a re-sent id and a label are recognised before the
# row reaches the store (it is stored ~0.25 s later; an id this far back is long stored).
_RECENT_ANSWERS_MAX = 100_000

Answer = dict[str, Any]  # prediction, score, model_version, arm: what a request id was answered


def answer_of(row: PredictionRecord) -> Answer:
    return {"prediction": row.prediction, "score": row.score, "model_version": row.model_version, "arm": row.arm}


def with_stored_answers(out: dict[str, Any], answers: Mapping[str, Answer]) -> dict[str, Any]:
    """``out`` (a /predict body) with the first answers of the re-sent request ids in ``answers``,
    flagged ``duplicate``: a re-sent request gets what was stored, never a silent new answer."""
    out = {**out, "predictions": list(out["predictions"]),
           "scores": None if out["scores"] is None else list(out["scores"])}
    for i, rid in enumerate(out["request_ids"]):
        if rid in answers:
            out["predictions"][i] = answers[rid]["prediction"]
            if out["scores"] is not None:
                out["scores"][i] = answers[rid]["score"]
    first = answers.get(out["request_ids"][0])
    if first is not None:
        out["model_version"], out["arm"] = first["model_version"], first["arm"]
    return {**out, "duplicate": True, "duplicate_request_ids": sorted(answers)}


def request_ids(n: int, request_id: str | None) -> list[str]:
    """The ids of a request's rows: the client's id (``<id>-<i>`` in a batch), else fresh uuids."""
    if request_id is None:
        return [uuid.uuid4().hex for _ in range(n)]
    return [request_id] if n == 1 else [f"{request_id}-{i}" for i in range(n)]


class NotReady(RetrainerError):
    """No model is loaded yet (no champion alias, or it failed to load)."""


def read_wanted_state(cfg: RetrainerConfig, registry: Registry, store: Store) -> WantedState:
    """What should be served now: the champion (store first, alias repaired), A/B test, shadow switch."""
    name = cfg.model.name
    champion = resolve_champion(registry, store)
    test = store.active_ab_test(name)
    challenger = registry.alias_version(CHALLENGER)
    shadow, sample = shadow_target(
        store.ledger(name), rollout_mode=cfg.rollout.resolved_mode, challenger=challenger,
        default_sample=cfg.rollout.shadow.sample,
    )
    if shadow is not None and shadow == champion:
        shadow = None  # shadowing the champion against itself measures nothing
    if test is None:
        return WantedState(champion=champion, shadow=shadow, shadow_sample=sample)
    return WantedState(
        champion=champion, ab_test_id=test.id, ab_champion=test.champion_version,
        ab_challenger=test.challenger_version, ab_salt=test.salt, ab_split=test.split,
        shadow=shadow, shadow_sample=sample,
    )


class PredictionService:
    def __init__(
        self,
        cfg: RetrainerConfig,
        *,
        store: Store,
        router: ModelRouter,
        writer: InferenceLogWriter,
        shadow: ShadowRunner,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], datetime] | None = None,
        spool: PredictionSpool | None = None,
    ) -> None:
        self.cfg = cfg
        # Event time of predictions and default time of labels. Replays and the demo's simulated
        # days pass their own clock; a server uses the wall clock.
        self.clock = clock or (lambda: datetime.now(_UTC))
        self.model_name = cfg.model.name
        self.features = cfg.data.features
        self.feature_names = [f.name for f in cfg.data.features]
        self.store = store
        self.router = router
        self.writer = writer
        self.shadow = shadow
        self.spool = spool
        self.metrics = metrics or ServiceMetrics(self.model_name)
        self._seen_units: set[tuple[int, str]] = set()
        self._recent: OrderedDict[str, tuple[PredictionRecord, asyncio.Future[None] | None]] = OrderedDict()
        self._started = False
        self._owned_store: Store | None = None  # from_config opened it, stop() closes it
        if router.on_change is None:  # the shadow process loads a new shadow version before its first job
            router.on_change = lambda routing: shadow.warm(None if routing.shadow is None else routing.shadow.version)
        self._register_gauges()

    @classmethod
    def from_config(
        cls,
        cfg: RetrainerConfig,
        *,
        store: Store | None = None,
        registry: Registry | None = None,
        loader: Callable[[str], ServedModel] | None = None,
        reload_interval: float = 5.0,
        log_queue: int = 10_000,
        clock: Callable[[], datetime] | None = None,
        shadow_source: ShadowModelSource | None = None,
    ) -> PredictionService:
        """Wire the service from ``cfg``. ``loader`` replaces how the server process loads models
        (tests); with ``rollout.shadow.isolation: process`` the shadow process loads its model from
        ``shadow_source`` (default: the same registry, by version)."""
        owned = store is None
        store = store or Store.from_config(cfg)  # schema checked: a clear error says what to run
        registry = registry or Registry.from_config(cfg)
        loader = loader or registry_loader(registry, cfg.data.features)
        router = ModelRouter(loader, lambda: read_wanted_state(cfg, registry, store), interval=reload_interval)
        # Group commit: requests wait for the transaction, so linger briefly. Buffered or spooled:
        # nobody waits for the store, so gather for longer and write bigger batches.
        committed = cfg.serving.durability == "committed"
        group_commit = committed and cfg.serving.commit == "store"
        linger = COMMIT_LINGER if group_commit else SPOOL_LINGER if committed else BUFFERED_LINGER
        writer = InferenceLogWriter(store, cfg.model.name, cfg.data.features, max_queue=log_queue, linger=linger)
        spool = PredictionSpool(spool_directory(cfg), cfg.model.name) if committed and not group_commit else None
        sc = cfg.rollout.shadow
        if sc.isolation == "process" and shadow_source is None:
            shadow_source = ShadowModelSource.from_registry(registry, cfg.data.features)
        shadow = ShadowRunner(cfg.model.name, sink=writer.submit, queue_size=sc.queue_size, workers=sc.workers,
                              isolation=sc.isolation, source=shadow_source, nice=sc.nice)
        service = cls(cfg, store=store, router=router, writer=writer, shadow=shadow, clock=clock, spool=spool)
        service._owned_store = store if owned else None
        return service

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool, start the writer (it first stores what a crashed server left in the
        spool), load the models, start the shadow workers and reloader."""
        if self.spool is not None:
            self.spool.open()
        self.writer.start()
        if self.spool is not None:
            # Replayed rows are remembered first: a client re-sending one of those ids before the
            # writer stored it gets the acknowledged answer, not a new one.
            self.spool.replay(self.writer.submit, lambda rows: self._remember(rows, None))
        self.shadow.start()
        self.router.refresh()
        self.router.start()
        self._started = True

    def stop(self) -> None:
        """Stop reloading, stop the shadow, write every queued row, then close a store opened here."""
        self.router.stop()
        self.shadow.close()
        self.writer.close()
        if self.spool is not None:
            self.spool.close()  # deleted when all its rows were stored, else kept for the next start
        if self._owned_store is not None:
            self._owned_store.close()  # its engine reconnects if the service is started again
        self._started = False

    @property
    def ready(self) -> bool:
        return self.router.routing is not None

    # -- predict ------------------------------------------------------------------------------

    def predict(
        self, instances: Sequence[Mapping[str, Any]], *, unit_id: str | None = None, request_id: str | None = None,
        stored: Mapping[str, Answer] | None = None,
    ) -> tuple[dict[str, Any], list[Any] | Commit | None, Commit | list[asyncio.Future[None]] | None]:
        """Answer a batch of validated instances; returns (body, overflow, ticket).

        ``overflow``: the log item to enqueue off the event loop when the queue was full, else None.
        ``ticket``: with ``serving.durability: committed``, what must resolve before the answer is
        sent: the spool flushes to await (``commit: spool``; call it on the event loop) or the
        group-commit :class:`Commit` (``store``); None when buffered. With the spool, ``stored``
        are the answers the store already has for these request ids (:meth:`stored_answers`)."""
        routing = self.router.routing
        if routing is None:
            raise NotReady(self.router.stats.last_error or "models are still loading")
        t0 = time.perf_counter()
        n = len(instances)
        rids = request_ids(n, request_id)

        ab = routing.ab
        test_id = None
        if ab is not None:
            unit = unit_id if unit_id is not None else rids[0]
            if bucket(ab.salt, unit) < ab.threshold:
                arm, model = CHALLENGER_ARM, ab.challenger
            else:
                arm, model = CHAMPION_ARM, ab.champion
            test_id = ab.test_id
        else:
            unit, arm, model = unit_id, CHAMPION_ARM, routing.champion

        columns = {name: [inst.get(name) for inst in instances] for name in self.feature_names}
        pred, score = model.predict(columns)
        # As stored (the log's prediction column is a float): a re-sent id, answered from the
        # store, must get the same JSON as the first answer (0.0, not 0 then 0.0).
        preds = [float(p) for p in pred.tolist()]
        scores = None if score is None else score.tolist()
        latency = time.perf_counter() - t0
        ts = self.clock()
        version = model.version

        rows: list[Any] = [
            PredictionRecord(rids[i], instances[i], preds[i], ts, version, unit, arm,
                             None if scores is None else scores[i], test_id)
            for i in range(n)
        ]
        if test_id is not None:
            key = (test_id, unit)
            if key not in self._seen_units:
                if len(self._seen_units) >= _SEEN_UNITS_MAX:
                    self._seen_units.clear()
                self._seen_units.add(key)
                rows.append(Assignment(test_id, unit, arm))
        body = {
            "request_ids": rids, "predictions": preds, "scores": scores,
            "model_version": version, "arm": arm, "ab_test_id": test_id,
        }
        ticket: Commit | list[asyncio.Future[None]] | None = None
        item: list[Any] | Commit | None = rows
        if self.spool is not None:
            body, item, ticket = self._spool(body, rows, (stored or {}) if request_id is not None else None)
        elif self.cfg.serving.durability == "committed":
            item = ticket = Commit(rows)  # stored before the answer: a label finds it in the store
        else:
            self._remember(rows, None)  # buffered: a label sent right after the answer is not "unknown"
        overflow = None if item is None or self.writer.offer(item) else item

        shadow = routing.shadow
        if shadow is not None and shadow is not model:
            self.shadow.offer(
                ShadowJob(shadow, columns, rids, version, preds, scores, latency * 1000.0, ts),
                routing.shadow_sample,
            )
        self.metrics.observe_prediction(arm, time.perf_counter() - t0, n)
        return body, overflow, ticket

    def _spool(
        self, body: dict[str, Any], rows: list[Any], stored: Mapping[str, Answer] | None,
    ) -> tuple[dict[str, Any], list[Any] | None, list[asyncio.Future[None]]]:
        """Append a request's rows to the spool: (body, log item, flushes to await). A client id
        answered before (by this process, or found in the store: ``stored``) is answered as it was
        and not logged again; its first answer's flush is awaited too, so it is never acknowledged
        before it is durable. If that flush failed (the 503 told the client to retry) or was
        abandoned, the first answer's row is appended and synced again like a new one.
        ``stored`` None: server-made ids, which cannot repeat."""
        assert self.spool is not None
        earlier: dict[str, Answer] = {}
        acks: list[asyncio.Future[None]] = []
        again: list[PredictionRecord] = []
        if stored is not None:
            for rid in body["request_ids"]:
                if rid in stored:
                    earlier[rid] = stored[rid]
                elif (seen := self._recent.get(rid)) is not None:
                    first, ack = seen
                    earlier[rid] = answer_of(first)
                    if ack is None:
                        continue  # replayed from the spool at start: durable
                    if not ack.done():
                        acks.append(ack)
                    elif ack.cancelled() or ack.exception() is not None:
                        again.append(first)  # failed, or abandoned (durability unknown): append again
        fresh = [r for r in rows if not (isinstance(r, PredictionRecord) and r.request_id in earlier)]
        item: list[Any] | None = None
        if fresh or again:
            ack, item = self.spool.append([*again, *fresh])
            acks.append(ack)
            self._remember([*again, *fresh], ack)
        if earlier:
            body = with_stored_answers(body, earlier)
        return body, item, acks

    def _remember(self, rows: list[Any], ack: asyncio.Future[None] | None) -> None:
        for r in rows:
            if isinstance(r, PredictionRecord):
                self._recent[r.request_id] = (r, ack)
                self._recent.move_to_end(r.request_id)
        while len(self._recent) > _RECENT_ANSWERS_MAX:
            self._recent.popitem(last=False)

    def stored_answers(self, request_ids: Sequence[str]) -> dict[str, Answer]:
        """What the store has for these request ids (blocking: call it off the event loop)."""
        return self.store.stored_answers(self.model_name, request_ids)

    # -- feedback -----------------------------------------------------------------------------

    def feedback(self, labels: Sequence[tuple[str, float, datetime | None]]) -> LabelWriteResult:
        """Store ground-truth labels (request_id, label, when known; default now).

        A request id this server answered is never reported unknown, even if its row has not
        reached the store yet (spooled or buffered rows are stored a moment later; the label is
        matched then), and a label time before its prediction's time is raised to it (listed in
        ``clamped_request_ids``; the store does the same for predictions it already has)."""
        now = self.clock()
        routing = self.router.routing
        problems: list[str] = []
        classes = None if routing is None else getattr(routing.champion, "classes", None)
        check_label_classes([float(x[1]) for x in labels], classes, problems)
        raise_if(problems, "label batch")
        records, clamped = [], []
        for rid, label, ts in labels:
            when = ts or now
            if (seen := self._recent.get(rid)) is not None and to_epoch(when) < to_epoch(seen[0].ts):
                when = seen[0].ts
                clamped.append(rid)
            records.append(LabelRecord(rid, float(label), when))
        # Received now (the service's clock): a label time far ahead of it is refused (store rule).
        result = self.store.log_labels(records, received_at=now)
        return LabelWriteResult(
            result.written, [rid for rid in result.unknown_request_ids if rid not in self._recent],
            sorted({*clamped, *result.clamped_request_ids}))

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        routing = self.router.routing
        w = self.writer.stats
        return {
            "model": self.model_name,
            "ready": routing is not None,
            "routing": None if routing is None else routing.describe(),
            "reload": {"reloads": self.router.stats.reloads, "errors": self.router.stats.reload_errors,
                       "last_error": self.router.stats.last_error},
            "log_writer": {
                "queue_depth": self.writer.depth(), "predictions_written": w.predictions_written,
                "duplicates": w.duplicates, "rejected": w.rejected, "assignments_written": w.assignments_written,
                "shadow_written": w.shadow_written, "backpressure_waits": w.backpressure_waits,
                "write_errors": w.write_errors, "last_error": w.last_error,
                "durability": self.cfg.serving.durability, "commits": w.commits, "commit_failures": w.commit_failures,
                "transactions": w.batches,
            },
            "spool": None if self.spool is None else self.spool.status(),
            "shadow": self.shadow.live(),
        }

    def _register_gauges(self) -> None:
        m, w, s, r = self.metrics, self.writer, self.shadow, self.router
        m.gauge("retrainer_ready", "1 when a champion is loaded and serving.", lambda: 1.0 if r.routing else 0.0)
        m.gauge("retrainer_log_queue_depth", "Requests whose log rows wait for the store writer.", w.depth)
        m.gauge("retrainer_log_backpressure_total", "Requests that waited for room in the log queue.",
                lambda: w.stats.backpressure_waits, "counter")
        m.gauge("retrainer_log_rows_written_total", "Predictions written to the inference log.",
                lambda: w.stats.predictions_written, "counter")
        m.gauge("retrainer_log_write_errors_total", "Failed store writes (retried).", lambda: w.stats.write_errors, "counter")
        m.gauge("retrainer_shadow_queue_depth", "Shadow jobs waiting for a worker.", s.depth)
        m.gauge("retrainer_shadow_dropped_total", "Shadow jobs dropped because the shadow queue was full.",
                lambda: s.stats.dropped, "counter")
        m.gauge("retrainer_shadow_errors_total", "Shadow predictions that raised.", lambda: s.stats.errors, "counter")
        m.gauge("retrainer_shadow_completed_total", "Shadow predictions made.", lambda: s.stats.completed, "counter")
        m.gauge("retrainer_shadow_process_deaths_total", "Shadow worker processes that died (restarted on the next batch).",
                lambda: s.stats.process_deaths, "counter")
        m.gauge("retrainer_model_reload_errors_total", "Failed attempts to load or reload models.",
                lambda: r.stats.reload_errors, "counter")


__all__ = ["NotReady", "PredictionService", "read_wanted_state", "request_ids", "with_stored_answers"]
