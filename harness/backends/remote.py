"""What every network backend shares: concurrency, rate limiting, retries, timeouts, secrets.

A remote backend implements one coroutine, :meth:`RemoteBackend.recognise`, that turns one
request's WAV bytes into text through :meth:`RemoteBackend.send` (and :meth:`poll` for job
APIs). ``send`` waits for the rate limiter, applies the timeout and retries 429/5xx/timeouts
with exponential backoff and jitter, honouring ``Retry-After``. Up to ``concurrency``
utterances are in flight at once. A failure after the last attempt becomes that utterance's
failed transcript (error class and message, with every secret redacted) and the batch goes on.

Bounds (docs/backends.md): ``timeout`` covers a whole attempt, body included, so an answer
trickled a byte at a time cannot extend it; ``request_deadline`` covers a request's attempts and
waits together; a ``Retry-After`` above ``max_retry_after`` waits that long; an answer above
``max_response_bytes`` is refused while it streams. Redirects are followed only within the origin
a request was sent to: credentials and audio never go to another host.

An answer is only a transcript when it holds words, or when the API says that it heard no speech
(:class:`Silence`, each backend documents the signal it trusts). An empty, unparseable or
incomplete 2xx answer is a retryable failure, never cached: scored as deletions it would
manufacture disparity. Each finished transcript is handed to the caller at once (the executor
commits it), and once a stop is asked for no request starts, waits end, and none is retried.

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
import threading
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
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    stop_when_event_set,
)

from harness import redaction
from harness.backends.base import (
    AudioRequest,
    Backend,
    BackendOptions,
    Capabilities,
    ResultCallback,
    StopRequested,
    Transcript,
    describe_error,
)
from harness.errors import BackendUnavailable

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_BATCH_PER_SLOT = 32  # requests handed over per concurrency slot, so waves overlap within a batch
# httpcore's pool does work proportional to waiting requests x connections for every request: at
# concurrency 128 one pool reaches 14 % of the ideal throughput, 32 pools of 4 reach 79 % (docs/PERFORMANCE.md).
_CONNECTIONS_PER_POOL = 4
_MAX_REDIRECTS = 5  # same-origin hops followed (a trailing-slash or version redirect)
_STOP_CHECK_S = 0.1  # how often a wait looks at the stop flag (set by a signal handler in another frame)


# The one map from a bare manifest language code to the BCP-47 locale sent to APIs that need one
# (Azure, Google, Amazon Transcribe; overridable per backend with `locales:`). Where a language has
# several locales, the CLDR likely-subtags region is used when every one of those APIs accepts it
# (es -> es-ES, pt -> pt-BR, zh -> zh-CN); ar -> ar-SA because Transcribe has no ar-EG. For accent
# studies set the locale deliberately: it is part of what is being measured.
DEFAULT_LOCALES: dict[str, str] = {
    "af": "af-ZA",
    "ar": "ar-SA",
    "cy": "cy-GB",
    "da": "da-DK",
    "de": "de-DE",
    "en": "en-US",
    "es": "es-ES",
    "fa": "fa-IR",
    "fr": "fr-FR",
    "ga": "ga-IE",
    "gd": "gd-GB",
    "he": "he-IL",
    "hi": "hi-IN",
    "id": "id-ID",
    "it": "it-IT",
    "ja": "ja-JP",
    "ko": "ko-KR",
    "ms": "ms-MY",
    "nl": "nl-NL",
    "pl": "pl-PL",
    "pt": "pt-BR",
    "ru": "ru-RU",
    "sv": "sv-SE",
    "ta": "ta-IN",
    "te": "te-IN",
    "th": "th-TH",
    "tr": "tr-TR",
    "vi": "vi-VN",
    "zh": "zh-CN",
}


class RemoteOptions(BackendOptions):
    concurrency: int = Field(8, ge=1, le=1024, description="requests in flight at once")
    rate_limit: float | None = Field(None, gt=0, description="requests per second (token bucket); none: unlimited")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP attempt, the whole answer included")
    max_attempts: int = Field(5, ge=1, le=20, description="tries per HTTP request before the utterance fails")
    backoff_initial: float = Field(0.5, ge=0, description="first retry wait in seconds (doubles, with jitter)")
    backoff_max: float = Field(30.0, ge=0, description="longest wait between retries, unless Retry-After asks more")
    max_retry_after: float = Field(60.0, ge=0, description="longest Retry-After honoured; a longer one waits this long")
    request_deadline: float = Field(
        300.0, gt=0, description="seconds per HTTP request in all: every attempt and every wait between them"
    )
    max_response_bytes: int = Field(
        16 << 20, ge=1024, description="largest answer accepted (bytes, decompressed); a larger one fails the request"
    )


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


class UnusableAnswer(RemoteError):
    """A 2xx answer that holds no transcript (not JSON, a field missing or null, empty text): retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True)
class Silence:
    """What :meth:`RemoteBackend.recognise` returns when the API says it heard no speech: an empty
    transcript that is a real answer. ``signal`` names what in the answer proved it."""

    signal: str


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


def to_locale(language: str, locales: dict[str, str]) -> str | None:
    """``en-GB``/``en_gb`` pass through as ``en-GB``; a bare code is looked up in ``locales``; else None."""
    code, _, region = language.strip().replace("_", "-").partition("-")
    if region:
        return f"{code.lower()}-{region.upper()}"
    return locales.get(code.lower())


def require_locale(language: str, locales: dict[str, str], backend: str) -> str:
    """:func:`to_locale`, or an error that says how to give the locale."""
    locale = to_locale(language, locales)
    if locale is None:
        code = language.strip().lower()
        raise RemoteError(
            f"language '{language}' is not a locale; give the backend option locales: {{{code}: {code}-XX}}, "
            f"or force one in the backend options, or write the locale in the manifest (backend '{backend}')"
        )
    return locale


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if not math.isnan(seconds) else None  # inf stays inf: capped by the caller
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
        self._on_result: ResultCallback | None = None
        self._stop: threading.Event | None = None

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(max_batch_size=max(64, self.options.concurrency * _BATCH_PER_SLOT))

    def keep_secret(self, value: str | None) -> str | None:
        """Register a credential so it is redacted from every error message."""
        return redaction.keep(value)

    def redact(self, text: str) -> str:
        return redaction.redact(text)

    async def recognise(self, request: AudioRequest, audio: bytes) -> str | Silence:
        """The text for one utterance, or :class:`Silence` where the API proves there was no speech;
        raise on failure (the message is recorded). Empty text is a failure (:class:`UnusableAnswer`)."""
        raise NotImplementedError

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        return self.transcribe_each(batch)

    def transcribe_each(
        self,
        batch: Sequence[AudioRequest],
        on_result: ResultCallback | None = None,
        stop: threading.Event | None = None,
    ) -> list[Transcript]:
        """Each transcript goes to ``on_result`` as it arrives; once ``stop`` is set no request
        starts, waits end and nothing is retried; those on the wire finish, then :class:`StopRequested`."""
        if self._loop is None:
            self._loop = _new_event_loop()
        self._on_result, self._stop = on_result, stop
        try:
            return self._loop.run_until_complete(self._run_batch(batch))
        finally:
            self._on_result = self._stop = None

    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

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
            results = await asyncio.gather(*tasks)
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if isinstance(exc, FatalRemoteError):
                raise BackendUnavailable(f"backend '{self.name}': {self.redact(str(exc))}") from None
            raise
        if any(result is None for result in results):
            raise StopRequested
        return [result for result in results if result is not None]

    async def _one(self, request: AudioRequest, slots: asyncio.Queue[int]) -> Transcript | None:
        """The utterance's transcript (ok or failed); None when a stop came first."""
        utt_id = request.utterance.id
        slot = await slots.get()
        self._pool_of_task.set(self._pools[slot // _CONNECTIONS_PER_POOL])  # task-local: each task has its context
        try:
            if self.stopping():
                return None
            start = time.perf_counter()
            assert request.samples is not None
            audio = wav_bytes(request.samples, request.sample_rate)

            async def answer() -> str:
                result = await self.recognise(request, audio)
                if isinstance(result, Silence):
                    return ""
                if not isinstance(result, str) or not result.strip():
                    raise UnusableAnswer(
                        "empty transcript in a 2xx answer, without the API's sign that it heard no speech"
                    )
                return result

            try:
                text = await self.retrying(answer)
            except (FatalRemoteError, StopRequested) as exc:
                if isinstance(exc, StopRequested):
                    return None
                raise
            except Exception as exc:  # any failure is data about this utterance
                transcript = Transcript.failed(utt_id, self.redact(describe_error(exc)), time.perf_counter() - start)
            else:
                transcript = Transcript.ok(utt_id, text, time.perf_counter() - start)
            if self._on_result is not None:
                self._on_result(transcript)
            return transcript
        finally:
            slots.put_nowait(slot)

    def make_client(self, tls: ssl.SSLContext) -> httpx.AsyncClient:
        size = min(self.options.concurrency, _CONNECTIONS_PER_POOL)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        # Redirects are followed by send(), within one origin: httpx would take the audio, and every
        # credential header but Authorization, to wherever a 307 points.
        return httpx.AsyncClient(timeout=self.options.timeout, limits=limits, follow_redirects=False, verify=tls)

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, rate limited and retried; a 2xx response (body read) or :class:`RemoteError`."""
        client = self._pool_of_task.get()  # set by _one: send() is called from recognise()
        request = client.build_request(method, url, **kwargs)
        request.read()  # one buffered body: a streamed multipart form costs a socket write per part
        timeout = self.options.timeout

        async def attempt() -> httpx.Response:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                async with asyncio.timeout(timeout):  # the whole exchange: a trickled body cannot extend it
                    response = await self._exchange(client, request)
            except (TimeoutError, httpx.TimeoutException):
                raise RemoteError(f"no whole answer within timeout ({timeout:g} s)", retryable=True) from None
            except httpx.TransportError as exc:
                raise RemoteError(f"{type(exc).__name__}: {exc}", retryable=True) from None
            check_status(response)
            return response

        return await self.retrying(attempt)

    async def _exchange(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        """Send, following redirects within the request's origin, and read the answer up to the size cap."""
        for _ in range(_MAX_REDIRECTS + 1):
            response = await client.send(request, stream=True)
            try:
                if response.next_request is None:
                    await read_capped(response, self.options.max_response_bytes)
                    return response
                target = response.next_request
                if origin(target.url) != origin(request.url):
                    raise RemoteError(
                        f"HTTP {response.status_code} redirect to {origin(target.url)} refused: credentials and "
                        f"audio are sent only to {origin(request.url)}; set base_url to the address that answers",
                        status=response.status_code,
                    )
                request = target
            finally:
                await response.aclose()
        raise RemoteError(f"more than {_MAX_REDIRECTS} redirects", status=response.status_code)

    async def retrying(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``attempt`` until it succeeds, fails for good, runs out of tries or of
        ``request_deadline``, or a stop is asked for (:class:`StopRequested`)."""
        o = self.options
        stop = stop_after_attempt(o.max_attempts) | stop_before_delay(o.request_deadline)
        if self._stop is not None:
            stop = stop | stop_when_event_set(self._stop)
        retryer = AsyncRetrying(
            stop=stop,
            wait=self._wait,
            sleep=self.sleep,
            retry=retry_if_exception(lambda exc: isinstance(exc, RemoteError) and exc.retryable),
            reraise=True,
        )
        try:
            return await retryer(attempt)
        except RemoteError as exc:
            if self.stopping():
                raise StopRequested from None
            tries = retryer.statistics.get("attempt_number", 1)
            if exc.retryable and tries > 1:
                why = "" if tries >= o.max_attempts else f", at request_deadline ({o.request_deadline:g} s)"
                raise RemoteError(f"{exc} (gave up after {tries} attempts{why})", status=exc.status) from None
            if exc.retryable and o.max_attempts > 1:  # the deadline left no time for a second try
                raise RemoteError(f"{exc} (no time left in request_deadline {o.request_deadline:g} s)") from None
            raise

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the server sent one (at most ``max_retry_after``), else exponential backoff
        with full jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RemoteError) and exc.retry_after is not None:
            return min(exc.retry_after, self.options.max_retry_after)
        ceiling = min(self.options.backoff_max, self.options.backoff_initial * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` that ends early, with :class:`StopRequested`, once a stop is asked for."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.stopping():
                raise StopRequested
            await asyncio.sleep(min(left, _STOP_CHECK_S))
        if self.stopping():
            raise StopRequested

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
            await self.sleep(delay)
            waited += delay
            delay = min(schedule.maximum, delay * schedule.factor)

    def close(self) -> None:
        if self._loop is None:
            return
        for pool in self._pools:
            self._loop.run_until_complete(pool.aclose())
        self._loop.close()
        self._loop, self._pools = None, []


def origin(url: httpx.URL) -> str:
    """``scheme://host:port``, the port always written, so equal origins compare equal."""
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return f"{url.scheme}://{url.host}:{port}"


async def read_capped(response: httpx.Response, limit: int) -> None:
    """Read a streamed answer into ``response.content``, refusing it once it passes ``limit`` bytes
    (decompressed: a small gzip body may expand to gigabytes)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RemoteError(f"answer of {int(declared):,} bytes refused: over max_response_bytes ({limit:,})")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise RemoteError(f"answer refused after {size:,} bytes: over max_response_bytes ({limit:,})")
        chunks.append(chunk)
    response._content = b"".join(chunks)  # what Response.aread() sets; read here so that the cap applies


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
    """The decoded body, or an :class:`UnusableAnswer` with ``hint`` (usually what base_url should look like)."""
    try:
        return response.json()
    except ValueError:
        raise UnusableAnswer(f"response is not JSON; {hint}") from None


def json_text(payload: Any, *path: str | int) -> str:
    """A string field of a JSON answer (:func:`json_field`), or an :class:`UnusableAnswer` naming it."""
    text = json_field(payload, *path)
    if not isinstance(text, str):
        raise UnusableAnswer(f"unexpected response: '{path[-1]}' is not a string")
    return text


def json_field(payload: Any, *path: str | int) -> Any:
    """``payload[path[0]][path[1]]...`` or an :class:`UnusableAnswer` naming the missing field."""
    current = payload
    for step, key in enumerate(path):
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(k) for k in path[: step + 1])
            raise UnusableAnswer(f"unexpected response: no '{where}'") from None
    return current


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed: it halves the client's CPU per request (docs/PERFORMANCE.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
