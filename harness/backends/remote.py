"""What every network backend shares: concurrency, rate limiting, retries, timeouts, secrets.

A remote backend implements one coroutine, :meth:`RemoteBackend.recognise`, that turns one
request's WAV bytes into text through :meth:`RemoteBackend.send` (and :meth:`poll` for job
APIs). ``send`` waits for the rate limiter, applies the timeout and retries 429/5xx/timeouts
with exponential backoff and jitter, honouring ``Retry-After``. Up to ``concurrency``
utterances are in flight at once. A failure after the last attempt becomes that utterance's
failed transcript (error class and message, with every secret redacted) and the batch goes on.

The batch runs on an event loop the backend owns, so the HTTP connection pool and the rate
limiter persist across the executor's batches.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import logging
import math
import os
import random
import ssl
import time
import wave
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import numpy as np
from aiolimiter import AsyncLimiter
from pydantic import Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from harness import redaction
from harness.backends.base import AudioRequest, Backend, BackendOptions, Capabilities, Transcript, describe_error
from harness.errors import BackendUnavailable

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_BATCH_PER_SLOT = 32  # requests handed over per concurrency slot, so waves overlap within a batch
# httpcore's pool does work proportional to waiting requests x connections for every request: at
# concurrency 128 one pool reaches 14 % of the ideal throughput, 32 pools of 4 reach 79 % (docs/PERFORMANCE.md).
_CONNECTIONS_PER_POOL = 4


# Bare manifest codes to the BCP-47 locale that APIs needing one are sent (overridable per backend).
DEFAULT_LOCALES: dict[str, str] = {
    "de": "de-DE",
    "en": "en-US",
    "es": "es-ES",
    "fr": "fr-FR",
    "hi": "hi-IN",
    "it": "it-IT",
    "ja": "ja-JP",
    "ko": "ko-KR",
    "nl": "nl-NL",
    "pl": "pl-PL",
    "pt": "pt-BR",
    "ru": "ru-RU",
    "tr": "tr-TR",
}


class RemoteOptions(BackendOptions):
    concurrency: int = Field(8, ge=1, le=1024, description="requests in flight at once")
    rate_limit: float | None = Field(None, gt=0, description="requests per second (token bucket); none: unlimited")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP request")
    max_attempts: int = Field(5, ge=1, le=20, description="tries per HTTP request before the utterance fails")
    backoff_initial: float = Field(0.5, ge=0, description="first retry wait in seconds (doubles, with jitter)")
    backoff_max: float = Field(30.0, ge=0, description="longest wait between retries, unless Retry-After asks more")


class RemoteError(Exception):
    """An HTTP exchange that did not give a usable answer."""

    def __init__(
        self, message: str, *, retryable: bool = False, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class FatalRemoteError(RemoteError):
    """Every later request would fail the same way (a missing bucket, say), so the run stops early."""


class RejectedCredentials(FatalRemoteError):
    """401/403: the credentials are wrong or lack a permission."""


@dataclass(frozen=True)
class Poll:
    """How long to wait between status checks of an asynchronous job, and for how long in all."""

    initial: float = 0.5
    factor: float = 1.5
    maximum: float = 10.0
    deadline: float = 900.0


def read_secret(env_name: str | None, backend: str, option: str = "api_key_env") -> str | None:
    """The credential in ``$env_name``; configs name the variable, never hold the value."""
    if env_name is None:
        return None
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise BackendUnavailable(
            f"backend '{backend}': environment variable {env_name} is not set; export it, or set "
            f"'{option}' to the variable that holds the key"
        )
    return value


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV, the one format every speech API accepts.

    Scaled by 32768, the inverse of how 16-bit files decode, so a 16-bit source is sent bit-exact.
    """
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def to_locale(language: str, locales: dict[str, str], backend: str) -> str:
    """``en-GB``/``en_GB`` pass through; a bare code is looked up in ``locales``."""
    code = language.strip().replace("_", "-")
    if "-" in code:
        return code
    if code in locales:
        return locales[code]
    raise RemoteError(
        f"language '{language}' is not a locale; give the backend option locales: {{{code}: {code}-XX}}, "
        f"or force one in the backend options, or write the locale in the manifest (backend '{backend}')"
    )


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class RemoteBackend(Backend):
    """Subclass, set ``name``/``Options``, implement :meth:`recognise` and :meth:`fingerprint`."""

    Options: ClassVar[type[BackendOptions]] = RemoteOptions
    options: RemoteOptions

    def __init__(self, options: RemoteOptions) -> None:
        super().__init__(options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: list[httpx.AsyncClient] = []
        self._pool_of_task: ContextVar[httpx.AsyncClient] = ContextVar("pool")
        self._limiter: AsyncLimiter | None = None

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(max_batch_size=max(64, self.options.concurrency * _BATCH_PER_SLOT))

    def keep_secret(self, value: str | None) -> str | None:
        """Register a credential so it is redacted from every error message."""
        return redaction.keep(value)

    def redact(self, text: str) -> str:
        return redaction.redact(text)

    async def recognise(self, request: AudioRequest, audio: bytes) -> str:
        """The text for one utterance; raise on failure (the message is recorded)."""
        raise NotImplementedError

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        if self._loop is None:
            self._loop = _new_event_loop()
        return self._loop.run_until_complete(self._run_batch(batch))

    async def _run_batch(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        if not self._pools:
            tls = httpx.create_ssl_context()  # one CA bundle load, not one per pool
            pools = math.ceil(self.options.concurrency / _CONNECTIONS_PER_POOL)
            self._pools = [self.make_client(tls) for _ in range(pools)]
            rate = self.options.rate_limit
            self._limiter = AsyncLimiter(rate, 1.0) if rate else None
        slots: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(self.options.concurrency):
            slots.put_nowait(slot)
        tasks = [asyncio.ensure_future(self._one(request, slots)) for request in batch]
        try:
            return list(await asyncio.gather(*tasks))
        except FatalRemoteError as exc:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise BackendUnavailable(f"backend '{self.name}': {self.redact(str(exc))}") from None

    async def _one(self, request: AudioRequest, slots: asyncio.Queue[int]) -> Transcript:
        utt_id = request.utterance.id
        slot = await slots.get()
        self._pool_of_task.set(self._pools[slot // _CONNECTIONS_PER_POOL])  # task-local: each task has its context
        try:
            start = time.perf_counter()
            try:
                assert request.samples is not None
                text = await self.recognise(request, wav_bytes(request.samples, request.sample_rate))
            except FatalRemoteError:
                raise
            except Exception as exc:  # any failure is data about this utterance
                return Transcript.failed(utt_id, self.redact(describe_error(exc)), time.perf_counter() - start)
            return Transcript.ok(utt_id, text, time.perf_counter() - start)
        finally:
            slots.put_nowait(slot)

    def make_client(self, tls: ssl.SSLContext) -> httpx.AsyncClient:
        size = min(self.options.concurrency, _CONNECTIONS_PER_POOL)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        return httpx.AsyncClient(timeout=self.options.timeout, limits=limits, follow_redirects=True, verify=tls)

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, rate limited and retried; a 2xx response or :class:`RemoteError`."""
        client = self._pool_of_task.get()  # set by _one: send() is called from recognise()
        request = client.build_request(method, url, **kwargs)
        request.read()  # one buffered body: a streamed multipart form costs a socket write per part

        async def attempt() -> httpx.Response:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                response = await client.send(request)
            except httpx.TimeoutException:
                raise RemoteError(f"timed out after {self.options.timeout:g} s", retryable=True) from None
            except httpx.TransportError as exc:
                raise RemoteError(f"{type(exc).__name__}: {exc}", retryable=True) from None
            check_status(response)
            return response

        return await self.retrying(attempt)

    async def retrying(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``attempt`` until it succeeds, fails for good, or runs out of tries."""
        retryer = AsyncRetrying(
            stop=stop_after_attempt(self.options.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, RemoteError) and exc.retryable),
            reraise=True,
        )
        try:
            return await retryer(attempt)
        except RemoteError as exc:
            if exc.retryable and self.options.max_attempts > 1:
                raise RemoteError(
                    f"{exc} (gave up after {self.options.max_attempts} attempts)", status=exc.status
                ) from None
            raise

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the server sent one, else exponential backoff with full jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RemoteError) and exc.retry_after is not None:
            return exc.retry_after
        ceiling = min(self.options.backoff_max, self.options.backoff_initial * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def poll(self, check: Callable[[], Awaitable[str | None]], schedule: Poll | None = None) -> str:
        """Call ``check`` until it returns text (None: not done yet), waiting longer each time."""
        schedule = schedule or Poll()
        waited, delay = 0.0, schedule.initial
        while True:
            result = await check()
            if result is not None:
                return result
            if waited >= schedule.deadline:
                raise RemoteError(f"job not finished after {schedule.deadline:g} s")
            await asyncio.sleep(delay)
            waited += delay
            delay = min(schedule.maximum, delay * schedule.factor)

    def close(self) -> None:
        if self._loop is None:
            return
        for pool in self._pools:
            self._loop.run_until_complete(pool.aclose())
        self._loop.close()
        self._loop, self._pools = None, []


def check_status(response: httpx.Response) -> None:
    """Raise :class:`RemoteError` for a non-2xx response, quoting the start of its body."""
    if response.is_success:
        return
    # Redacted before it is shortened: a key cut at the end would no longer match, and half of it would show.
    body = redaction.redact(" ".join(response.text.split()))[:200] if response.content else ""
    message = f"HTTP {response.status_code} {response.reason_phrase}" + (f": {body}" if body else "")
    error = RejectedCredentials if response.status_code in (401, 403) else RemoteError
    raise error(
        message,
        retryable=response.status_code in RETRYABLE_STATUS,
        status=response.status_code,
        retry_after=retry_after_seconds(response.headers),
    )


def response_json(response: httpx.Response, hint: str) -> Any:
    """The decoded body, or a RemoteError with ``hint`` (usually what base_url should look like)."""
    try:
        return response.json()
    except ValueError:
        raise RemoteError(f"response is not JSON; {hint}") from None


def json_text(payload: Any, *path: str | int) -> str:
    """A string field of a JSON answer (:func:`json_field`), or a RemoteError naming it."""
    text = json_field(payload, *path)
    if not isinstance(text, str):
        raise RemoteError(f"unexpected response: '{path[-1]}' is not a string")
    return text


def json_field(payload: Any, *path: str | int) -> Any:
    """``payload[path[0]][path[1]]...`` or a RemoteError naming the missing field."""
    current = payload
    for step, key in enumerate(path):
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(k) for k in path[: step + 1])
            raise RemoteError(f"unexpected response: no '{where}'") from None
    return current


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed: it halves the client's CPU per request (docs/PERFORMANCE.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
