"""Local executor: every utterance once through the backend, cache first, batches in order.

Audio for the next batch is decoded on a helper thread while the backend works on the current
one, so decoding and resampling stay off the model's critical path. A backend that serves several
batches at once (``Capabilities.workers``: local model replicas) is given that many, one per
worker thread, and a new one the moment any finishes, so no replica waits on another. A backend that hands each
transcript over as it arrives (remote backends: a batch is ``concurrency`` x 32 paid requests)
has each committed at once, so a kill -9 loses at most the requests in flight; the rest of a
batch is committed in one transaction when it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import redaction
from harness.backends.base import AudioRequest, Backend, ResultCallback, StopRequested, Transcript
from harness.conditions import Rendering
from harness.data.audio import AudioError, file_sha256, load_audio, segment_key
from harness.data.manifest import Utterance
from harness.transcribe.cache import TranscriptCache, cache_key

log = logging.getLogger(__name__)

BatchCallback = Callable[[Sequence[Utterance], Sequence[Transcript]], None]
__all__ = ["BatchCallback", "StopRequested", "TranscribeResult", "WorkPlan", "transcribe_all", "transcribe_requests"]


@dataclass(frozen=True)
class TranscribeResult:
    transcripts: dict[str, Transcript]
    from_cache: frozenset[str]


def transcribe_all(
    utterances: Sequence[Utterance],
    backend: Backend,
    cache: TranscriptCache,
    *,
    rendering: Rendering | None = None,
    on_batch: BatchCallback | None = None,
    stop: threading.Event | None = None,
) -> TranscribeResult:
    """Transcribe what the cache lacks; return every utterance's transcript (ok or failed).

    With ``rendering`` every clip is heard under that condition: the transform runs on the
    decoded samples (on the prefetch thread) and its content key joins the cache key. Once
    ``stop`` is set, no new batch starts (:class:`StopRequested`); the one in flight is cached first
    (a remote backend stops inside it: no new request, no wait, what came back is committed).
    """
    caps = backend.capabilities
    plan = plan_work(utterances, backend, cache, rendering, on_batch, spread=caps.workers)
    prefetched = _prefetch(plan.batches, caps.sample_rate, caps.needs_audio, rendering)
    if caps.workers > 1:
        _run_concurrently(plan, prefetched, backend, cache, caps.workers, on_batch, stop)
        return TranscribeResult(plan.transcripts, plan.from_cache)
    for batch, (requests, failed) in zip(plan.batches, prefetched, strict=True):
        if stop is not None and stop.is_set():
            raise StopRequested
        produced = transcribe_requests(backend, requests, on_result=plan.committer(cache), stop=stop)
        plan.record(cache, batch, failed, produced, on_batch)
    return TranscribeResult(plan.transcripts, plan.from_cache)


def _run_concurrently(
    plan: WorkPlan,
    prefetched: Iterator[tuple[list[AudioRequest], list[Transcript]]],
    backend: Backend,
    cache: TranscriptCache,
    workers: int,
    on_batch: BatchCallback | None,
    stop: threading.Event | None,
) -> None:
    """Keep ``workers`` batches in flight, starting the next as soon as one ends. Results are
    recorded (and cached) on this thread, in the order they finish: SQLite stays on one thread."""
    running: dict[Future, tuple[list[Utterance], list[Transcript]]] = {}

    def settle(done: set[Future]) -> None:
        for future in done:
            batch, failed = running.pop(future)
            plan.record(cache, batch, failed, future.result(), on_batch)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model") as pool:
        try:
            for batch, (requests, failed) in zip(plan.batches, prefetched, strict=True):
                while len(running) >= workers:
                    settle(wait(running, return_when=FIRST_COMPLETED).done)
                if stop is not None and stop.is_set():
                    raise StopRequested
                running[pool.submit(transcribe_requests, backend, requests)] = (batch, failed)
        finally:  # on a stop or an interrupt too: what is in flight finishes and is cached
            while running:
                settle(wait(running, return_when=FIRST_COMPLETED).done)


@dataclass
class WorkPlan:
    """What one pass must still transcribe, and what it has so far; shared by every executor."""

    fingerprint: str
    keys: dict[str, str]  # utterance id -> cache key
    transcripts: dict[str, Transcript]  # filled from the cache, then batch by batch
    from_cache: frozenset[str]
    batches: list[list[Utterance]]
    committed: set[str] = field(default_factory=set)  # ids cached one by one as they arrived

    def committer(self, cache: TranscriptCache) -> ResultCallback:
        """Commit one transcript the moment the backend has it (one small transaction each)."""

        def commit(transcript: Transcript) -> None:
            if transcript.status == "ok":
                cache.put_many([(self.keys[transcript.id], self.fingerprint, transcript)])
                self.committed.add(transcript.id)

        return commit

    def record(
        self,
        cache: TranscriptCache,
        batch: Sequence[Utterance],
        failed: Sequence[Transcript],
        produced: Sequence[Transcript],
        on_batch: BatchCallback | None,
    ) -> None:
        """Cache a finished batch's transcripts not committed yet (one transaction) and report it."""
        cache.put_many((self.keys[t.id], self.fingerprint, t) for t in produced if t.id not in self.committed)
        self.transcripts.update((t.id, t) for t in (*failed, *produced))
        if on_batch:
            on_batch(batch, [self.transcripts[u.id] for u in batch])


def plan_work(
    utterances: Sequence[Utterance],
    backend: Backend,
    cache: TranscriptCache,
    rendering: Rendering | None,
    on_batch: BatchCallback | None,
    keys: dict[str, str] | None = None,
    spread: int = 1,
) -> WorkPlan:
    """Cache keys (``keys`` where another process made them), the cached transcripts (reported at
    once), and the rest in backend-sized batches: smaller ones where that leaves fewer than
    ``spread`` batches, so every one of ``spread`` workers has one."""
    fingerprint = backend.fingerprint_id()
    size = backend.capabilities.max_batch_size
    keys = keys if keys is not None else request_keys(utterances, backend, rendering)
    hits = cache.get_many(list(keys.values()))
    transcripts = {utt.id: Transcript.ok(utt.id, *hits[keys[utt.id]]) for utt in utterances if keys[utt.id] in hits}
    if transcripts and on_batch:
        done = [u for u in utterances if u.id in transcripts]
        on_batch(done, [transcripts[u.id] for u in done])
    pending = [utt for utt in utterances if utt.id not in transcripts]
    log.info("%d cached, %d to transcribe with %s", len(transcripts), len(pending), backend.name)
    size = max(1, min(size, -(-len(pending) // spread)))
    batches = [pending[i : i + size] for i in range(0, len(pending), size)]
    return WorkPlan(fingerprint, keys, transcripts, frozenset(transcripts), batches)


def transcribe_requests(
    backend: Backend,
    requests: Sequence[AudioRequest],
    *,
    on_result: ResultCallback | None = None,
    stop: threading.Event | None = None,
) -> list[Transcript]:
    """The backend's transcripts for ``requests``, credentials masked in failures, order checked;
    ``on_result`` gets those the backend hands over one by one (:meth:`Backend.transcribe_each`)."""
    if not requests:
        return []
    produced = [_redacted(t) for t in backend.transcribe_each(requests, on_result, stop)]
    _check_results(backend, requests, produced)
    return produced


def prepare_batch(
    batch: Sequence[Utterance], backend: Backend, rendering: Rendering | None
) -> tuple[list[AudioRequest], list[Transcript]]:
    """Decode (and render) a batch for ``backend``: its requests, and the clips that failed to load."""
    caps = backend.capabilities
    return _prepare(batch, caps.sample_rate, caps.needs_audio, rendering)


def request_keys(utterances: Sequence[Utterance], backend: Backend, rendering: Rendering | None) -> dict[str, str]:
    """Cache key per utterance. The audio is keyed by content even for backends that never decode
    it (a cloud API uploads the file), so an edited file is never served a stale transcript."""
    fingerprint = backend.fingerprint_id()
    digests: dict[Path, str] = {}

    def audio_key_of(utt: Utterance) -> str:
        if utt.audio not in digests:
            try:
                digests[utt.audio] = file_sha256(utt.audio)
            except OSError:  # unreadable: reported when loaded; the path keeps the key distinct
                digests[utt.audio] = f"unreadable:{utt.audio}"
        return segment_key(digests[utt.audio], utt)

    keys = {}
    for utt in utterances:
        audio_key = audio_key_of(utt)
        if rendering is not None:
            audio_key = rendering.key(utt, audio_key, audio_key_of)
        keys[utt.id] = cache_key(fingerprint, backend.request_key(utt, audio_key))
    return keys


def _prefetch(
    batches: Sequence[Sequence[Utterance]], sample_rate: int, needs_audio: bool, rendering: Rendering | None
) -> Iterator[tuple[list[AudioRequest], list[Transcript]]]:
    """Yield each batch's requests (and audio failures), decoding one batch ahead."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio") as pool:
        upcoming: Future = pool.submit(_prepare, batches[0], sample_rate, needs_audio, rendering)
        for index in range(len(batches)):
            current = upcoming.result()
            if index + 1 < len(batches):
                upcoming = pool.submit(_prepare, batches[index + 1], sample_rate, needs_audio, rendering)
            yield current


def _prepare(
    batch: Sequence[Utterance], sample_rate: int, needs_audio: bool, rendering: Rendering | None
) -> tuple[list[AudioRequest], list[Transcript]]:
    requests, failed = [], []
    for utt in batch:
        if not needs_audio:
            requests.append(AudioRequest(utt, None, sample_rate))
            continue
        try:
            samples = load_audio(utt, sample_rate)
        except (AudioError, OSError, ValueError) as exc:
            failed.append(Transcript.failed(utt.id, f"AudioError: {exc}"))
            continue
        if samples.size == 0:
            failed.append(Transcript.failed(utt.id, "AudioError: segment holds no samples"))
            continue
        if rendering is not None and rendering.changes_audio:
            try:
                samples = rendering.apply(utt, samples, sample_rate)
            except (AudioError, OSError, ValueError) as exc:  # e.g. a babble talker's file is unreadable
                failed.append(Transcript.failed(utt.id, f"ConditionError ({rendering.condition.name}): {exc}"))
                continue
        requests.append(AudioRequest(utt, samples, sample_rate))
    return requests, failed


def _redacted(transcript: Transcript) -> Transcript:
    """A failure's message without credentials: a plugin's exception may quote its key."""
    if transcript.error is None:
        return transcript
    return replace(transcript, error=redaction.redact(transcript.error))


def _check_results(backend: Backend, requests: Sequence[AudioRequest], produced: Sequence[Transcript]) -> None:
    expected = [r.utterance.id for r in requests]
    if [t.id for t in produced] != expected:
        raise RuntimeError(
            f"backend '{backend.name}' returned transcripts for {len(produced)} requests out of "
            f"{len(expected)} or out of order; a backend must return one transcript per request, in order"
        )
