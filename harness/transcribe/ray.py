"""Ray executor: the local executor's work, spread over the actors of a Ray cluster.

The driver (``asrfair run``) keeps everything that is not transcription: it reads the manifest,
asks the cache, and writes every batch that comes back to the same transcript cache as the
local executor, in one transaction per batch, as it arrives. Workers are Ray actors that create
the backend once (a local model is loaded once per actor, not per batch). They compute the
cache keys (the audio's content hash, the same keys as the local executor's) for shards of the
manifest, then decode, render and transcribe the batches they are given: the driver reads no
audio, and each worker reads the clips from a path it can see (a shared filesystem on a real
cluster; docs/scaling.md).

Each actor has at most two batches queued, so it always has the next one while it works and a
slow actor is never handed a long queue. Results arrive in completion order; every transcript
is keyed by utterance id, so scores do not depend on it. An actor that dies is restarted by Ray
(``max_restarts``) and its batch retried there; a batch whose actor cannot come back is retried
on another live actor. Nothing a dead actor did is lost (it had not been cached) and nothing is
counted twice (a batch is cached only once it is whole). Remote backends' limits stay global:
``concurrency`` and ``rate_limit`` are divided among the actors, so together they never exceed
what the config allows.

``ray`` is imported only here, and only when ``execute.executor`` is ``ray`` (the ``[ray]``
extra).
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.backends.base import Backend, Registry, Transcript
from harness.conditions import Rendering
from harness.data.manifest import Utterance
from harness.errors import BackendUnavailable, HarnessError
from harness.transcribe.cache import TranscriptCache
from harness.transcribe.local import (
    BatchCallback,
    StopRequested,
    TranscribeResult,
    plan_work,
    prepare_batch,
    request_keys,
    transcribe_requests,
)

if TYPE_CHECKING:  # the run config sits above this stage; only its types are needed here
    from harness.config import BackendSpec, ExecuteConfig

log = logging.getLogger(__name__)

QUEUED_PER_ACTOR = 2  # the batch being transcribed and the next one
KEY_SHARD = 2_000  # utterances per cache-key task: recordings' segments stay together, shards stay small
SPLIT_LIMITS = ("concurrency", "rate_limit")  # remote backends' global limits, shared among the actors


class ExecutorError(HarnessError):
    """The Ray cluster cannot run the work (no actor left, cluster unreachable); exit 2, rerun resumes."""


class Worker:
    """One Ray actor: the backend, created once; ``transcribe`` does one batch end to end."""

    def __init__(self, backend: str, options: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.WARNING)
        self.backend = Registry.default().create(backend, options)

    def fingerprint_id(self) -> str:
        return self.backend.fingerprint_id()

    def keys(self, shard: Sequence[Utterance], rendering: Rendering | None) -> dict[str, str]:
        """Cache keys of a shard of the manifest: hashing the audio is the workers' job, not the driver's."""
        return request_keys(shard, self.backend, rendering)

    def transcribe(
        self, batch: Sequence[Utterance], rendering: Rendering | None
    ) -> tuple[list[Transcript], list[Transcript]]:
        """(clips that failed to load, the backend's transcripts) for ``batch``."""
        requests, failed = prepare_batch(batch, self.backend, rendering)
        return failed, transcribe_requests(self.backend, requests)


def worker_options(backend: type[Backend], options: dict[str, Any], workers: int) -> dict[str, Any]:
    """``options`` for each of ``workers`` actors: a global ``concurrency``/``rate_limit`` divided
    among them (concurrency rounded down, at least 1 each), so the cluster keeps the config's limits."""
    fields = backend.Options.model_fields
    resolved = backend.Options.model_validate(options).model_dump()
    shared = dict(options)
    if "concurrency" in fields:
        shared["concurrency"] = max(1, resolved["concurrency"] // workers)
    if "rate_limit" in fields and resolved.get("rate_limit") is not None:
        shared["rate_limit"] = resolved["rate_limit"] / workers
    return shared


def actor_count(backend: type[Backend], options: dict[str, Any], workers: int) -> int:
    """No more actors than a remote backend's concurrency allows: each needs one request in flight."""
    if "concurrency" not in backend.Options.model_fields:
        return workers
    return max(1, min(workers, backend.Options.model_validate(options).model_dump()["concurrency"]))


def import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise BackendUnavailable(
            "execute.executor: ray needs Ray: pip install 'asr-fairness-harness[ray]' (or use executor: local)"
        ) from None


@dataclass
class _Job:
    batch: list[Utterance]
    actor: Any
    attempts: int


class RayPool:
    """The run's actors, created once and reused by every pass (condition) of the run."""

    def __init__(self, spec: BackendSpec, settings: ExecuteConfig, driver: Backend) -> None:
        self._ray = ray = import_ray()
        self.actors: list[Any] = []
        # Ray prints the cluster's notices (a retried task, a dead worker) to sys.stdout, which carries
        # --json; they go to stderr, with the progress and logs, while the pool lives.
        self._stdout, sys.stdout = sys.stdout, sys.stderr
        self._started = not ray.is_initialized()
        try:
            if self._started:
                self._init(settings)
            self._start_actors(spec, settings, driver)
        except BaseException:
            self.close()
            raise

    def _start_actors(self, spec: BackendSpec, settings: ExecuteConfig, driver: Backend) -> None:
        cls = type(driver)
        count = actor_count(cls, spec.options, settings.workers)
        options = worker_options(cls, spec.options, count)
        actor = self._ray.remote(Worker).options(
            num_cpus=settings.cpus_per_worker,
            num_gpus=settings.gpus_per_worker,
            max_restarts=settings.max_restarts,
            max_task_retries=settings.max_restarts,
        )
        self.actors = [actor.remote(spec.name, options) for _ in range(count)]
        self._check_fingerprints(driver)
        log.info("ray: %d actors of %s (%s CPU, %s GPU each)", count, spec.name, settings.cpus_per_worker,
                 settings.gpus_per_worker)  # fmt: skip

    def _init(self, settings: ExecuteConfig) -> None:
        # workers' own output would interleave with the driver's; their failures reach it as exceptions
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if settings.address is None:
            kwargs["num_cpus"] = max(1, math.ceil(settings.workers * settings.cpus_per_worker))
        try:
            self._ray.init(address=settings.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorError(f"execute.address {settings.address}: cannot join the Ray cluster ({exc})") from None

    def _check_fingerprints(self, driver: Backend) -> None:
        """Every actor's backend must be the driver's: the cache keys were computed with its fingerprint."""
        ray = self._ray
        try:
            ids = ray.get([a.fingerprint_id.remote() for a in self.actors])
        except ray.exceptions.RayActorError as exc:
            raise ExecutorError(f"a Ray actor could not create the backend: {_cause(exc)}") from None
        expected = driver.fingerprint_id()
        if any(i != expected for i in ids):
            raise ExecutorError(
                "the Ray actors' backend differs from the driver's (another model file or package version on "
                "the workers?); every worker must see the same model and harness"
            )

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started:
            self._ray.shutdown()
        sys.stdout = self._stdout

    def transcribe_all(
        self,
        utterances: Sequence[Utterance],
        backend: Backend,
        cache: TranscriptCache,
        *,
        rendering: Rendering | None = None,
        on_batch: BatchCallback | None = None,
        stop: threading.Event | None = None,
    ) -> TranscribeResult:
        """As :func:`harness.transcribe.local.transcribe_all`, on the actors. Once ``stop`` is set no batch is
        handed out; those in flight are cached, then :class:`StopRequested` is raised."""
        ray = self._ray
        rendering_ref = ray.put(rendering)  # shipped once, not with every batch
        keys = self._keys(utterances, rendering_ref)
        plan = plan_work(utterances, backend, cache, rendering, on_batch, keys=keys, spread=len(self.actors))
        queue = deque(plan.batches)
        jobs: dict[Any, _Job] = {}

        def submit(actor: Any, batch: list[Utterance], attempts: int = 0) -> None:
            jobs[actor.transcribe.remote(batch, rendering_ref)] = _Job(batch, actor, attempts)

        def stopping() -> bool:
            return stop is not None and stop.is_set()

        for _ in range(QUEUED_PER_ACTOR):
            for actor in self.actors:
                if queue:
                    submit(actor, queue.popleft())
        while jobs:
            (ref,), _ = ray.wait(list(jobs), num_returns=1)
            job = jobs.pop(ref)
            try:
                failed, produced = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # the actor died and Ray's restarts are used up
                self._retry_elsewhere(job, exc, submit)
                continue
            plan.record(cache, job.batch, failed, produced, on_batch)
            if queue and not stopping():
                submit(job.actor, queue.popleft())
        if queue:
            raise StopRequested
        return TranscribeResult(plan.transcripts, plan.from_cache)

    def _keys(self, utterances: Sequence[Utterance], rendering_ref: Any) -> dict[str, str]:
        """Every utterance's cache key, computed by the actors shard by shard (Ray retries a shard
        whose actor dies), so the driver reads no audio at all."""
        shards = [utterances[i : i + KEY_SHARD] for i in range(0, len(utterances), KEY_SHARD)]
        refs = [self.actors[i % len(self.actors)].keys.remote(s, rendering_ref) for i, s in enumerate(shards)]
        keys: dict[str, str] = {}
        for part in self._ray.get(refs):
            keys.update(part)
        return keys

    def _retry_elsewhere(self, job: _Job, exc: Exception, submit: Any) -> None:
        self.actors = [a for a in self.actors if a is not job.actor]
        if not self.actors or job.attempts >= len(self.actors) + 1:
            raise ExecutorError(
                f"no Ray actor could finish a batch of {len(job.batch)} utterances ({_cause(exc)}); "
                "the transcripts finished so far are cached: rerun to resume"
            )
        log.warning("ray: an actor died (%s); its batch goes to another actor", _cause(exc))
        submit(self.actors[job.attempts % len(self.actors)], job.batch, job.attempts + 1)


def _cause(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
