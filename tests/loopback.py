"""Real HTTP servers on 127.0.0.1 for backend tests and benchmarks.

``LoopbackServer(app)`` runs an ASGI app under uvicorn on a free port in a background thread.
``Faults`` is middleware that makes a server misbehave the way real APIs do (500s, 429 with
``Retry-After``, slow answers, dropped connections, requests never answered), seeded so a test is
reproducible, and counts what it did. ``Oracle`` plays the recogniser: it answers each WAV with
the text of the reference clip of the same length, so a test knows exactly what every transcript
should be.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import uvicorn
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from harness.data.audio import load_audio
from harness.data.manifest import Utterance, load_manifest


class LoopbackServer:
    """``with LoopbackServer(app) as server: server.url``: uvicorn on 127.0.0.1, port chosen by the OS."""

    def __init__(self, app: ASGIApp) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", backlog=2048)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server's thread is still alive (after ``__exit__``: it did not shut down in 10 s)."""
        return self._thread.is_alive()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("loopback server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@dataclass
class Faults:
    """Misbehaviour injected before the app sees a request; every kind is counted in ``seen``.

    ``latency`` is added to every answer. Of the requests, fraction ``error_500`` get a 500,
    ``error_429`` a 429 with ``Retry-After: retry_after``, ``slow`` wait ``slow_seconds`` first
    (past a client's timeout), ``drop`` have their connection closed without an answer, ``hang``
    are never answered: held until the client gives up and disconnects (so a server shuts down
    promptly after its clients time out), or closed unanswered after ``hang_seconds``.
    """

    latency: float = 0.0
    error_500: float = 0.0
    error_429: float = 0.0
    slow: float = 0.0
    drop: float = 0.0
    hang: float = 0.0
    retry_after: float = 0.05
    slow_seconds: float = 2.0
    hang_seconds: float = 30.0
    seed: int = 0
    seen: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def faulty(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            with self._lock:
                draw = self._rng.random()
                self.seen["requests"] += 1
            if self.latency:
                await asyncio.sleep(self.latency)
            kind = self._pick(draw)
            self.seen[kind] += 1
            if kind == "500":
                return await JSONResponse({"error": "injected"}, status_code=500)(scope, receive, send)
            if kind == "429":
                headers = {"Retry-After": f"{self.retry_after:g}"}
                return await JSONResponse({"error": "slow down"}, status_code=429, headers=headers)(
                    scope, receive, send
                )
            if kind == "drop":
                return await _drop(receive, send)
            if kind == "hang":
                if not await _until_disconnect(receive, self.hang_seconds):
                    await _drop(receive, send)
                return None
            if kind == "slow":
                await asyncio.sleep(self.slow_seconds)
            return await app(scope, receive, send)

        return faulty

    def _pick(self, draw: float) -> str:
        rates = (
            ("500", self.error_500),
            ("429", self.error_429),
            ("slow", self.slow),
            ("drop", self.drop),
            ("hang", self.hang),
        )
        for kind, rate in rates:
            if draw < rate:
                return kind
            draw -= rate
        return "ok"


async def _until_disconnect(receive: Receive, limit: float) -> bool:
    """Read (and discard) the request until the client goes away; False if it is still there after ``limit`` s."""
    try:
        async with asyncio.timeout(limit):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


async def _drop(receive: Receive, send: Send) -> None:
    """Close the connection with no answer at all.

    ASGI has no message for that, and uvicorn answers 500 when an app raises or returns without a
    response, so this closes uvicorn's transport (reached through its bound ``send``) and waits
    for the disconnect, after which uvicorn sends nothing.
    """
    send.__self__.transport.close()  # type: ignore[attr-defined]
    await _until_disconnect(receive, 5.0)


class InFlight:
    """Wraps an app, each request delayed by ``latency``; ``max`` is the most requests it held at once.

    With ``hold_until`` every request also waits until that many are in flight together (or
    ``hold_s`` passed): a test that needs concurrent clients proves they overlap by an event, not by
    hoping their timing does on a loaded machine."""

    def __init__(self, app: ASGIApp, latency: float, hold_until: int | None = None, hold_s: float = 120.0) -> None:
        self._app = Faults(latency=latency).wrap(app)
        self.now = self.max = 0
        self._hold_until, self._hold_s = hold_until, hold_s
        self._reached = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.now += 1
        self.max = max(self.max, self.now)
        try:
            if self._hold_until is not None:
                if self.now >= self._hold_until:
                    self._reached.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reached.wait(), self._hold_s)
            await self._app(scope, receive, send)
        finally:
            self.now -= 1


class Oracle:
    """A recogniser for fake servers: the reference text of the clip with the same sample count."""

    def __init__(self, texts_by_length: dict[int, str]) -> None:
        self.texts_by_length = texts_by_length
        self.heard: list[bytes] = []

    @classmethod
    def for_manifest(cls, path: Path) -> Oracle:
        return cls.for_utterances(load_manifest(path).utterances)

    @classmethod
    def for_utterances(cls, utterances: Iterable[Utterance], rate: int = 16_000) -> Oracle:
        texts: dict[int, str] = {}
        for utt in utterances:
            length = len(load_audio(utt, rate))
            if length in texts:
                raise ValueError(f"two test clips have {length} samples; give them distinct lengths")
            texts[length] = utt.text
        return cls(texts)

    def __call__(self, wav: bytes) -> str:
        self.heard.append(wav)
        samples, _ = sf.read(io.BytesIO(wav), dtype="float32")
        return self.texts_by_length.get(len(samples), "unknown clip")


def tone_clips(directory: Path, texts: list[str], base_seconds: float = 0.3) -> list[Path]:
    """One short tone per text, each a different length so an :class:`Oracle` can tell them apart."""
    from conftest import write_tone

    return [write_tone(directory / f"clip{i:03d}.wav", base_seconds + 0.01 * i) for i in range(len(texts))]


WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def tone_corpus(folder: Path, count: int = 12, *, french_every: int = 0) -> Path:
    """A manifest of ``count`` tone clips: six speakers, speakers 0-2 ``northern``, 3-5 ``southern``.

    Clip ``i`` reads four words starting at ``WORDS[i % 6]``, so clips starting with "alpha" are all
    northern. With ``french_every=n`` every n-th utterance (i % n == n - 1) is in French.
    """
    from conftest import write_jsonl

    texts = [" ".join(WORDS[(i + k) % 6] for k in range(4)) for i in range(count)]
    clips = tone_clips(folder / "audio", texts)
    records = [
        {
            "id": f"u{i:02d}",
            "audio": str(clip),
            "text": text,
            "speaker": f"s{i % 6}",
            "accent": "northern" if i % 6 < 3 else "southern",
            **({"language": "fr" if i % french_every == french_every - 1 else "en"} if french_every else {}),
        }
        for i, (clip, text) in enumerate(zip(clips, texts, strict=True))
    ]
    return write_jsonl(folder / "manifest.jsonl", records)


def redirect_app(target: str, status: int = 307) -> ASGIApp:
    """Answers every request with ``status`` and ``Location: target + path?query``; counts them in ``seen``."""
    seen: Counter = Counter()

    async def redirect(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen["requests"] += 1
        query = scope.get("query_string", b"").decode()
        location = target + scope["path"] + (f"?{query}" if query else "")
        await RedirectResponse(location, status_code=status)(scope, receive, send)

    redirect.seen = seen  # type: ignore[attr-defined]
    return redirect


class Trickle:
    """ASGI app: reads the request, answers 200 with a JSON content type, then sends the body one
    byte every ``interval`` s (never finishing it) until the client leaves or ``limit`` s pass.
    ``started`` counts the answers begun, ``left`` the clients that gave up."""

    def __init__(self, interval: float = 0.2, limit: float = 120.0) -> None:
        self.interval, self.limit = interval, limit
        self.started = self.left = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        self.started += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        gone = asyncio.ensure_future(_until_disconnect(receive, self.limit))
        await send({"type": "http.response.body", "body": b'{"text": "', "more_body": True})
        while not gone.done():
            await asyncio.sleep(self.interval)
            if not gone.done():
                await send({"type": "http.response.body", "body": b"a", "more_body": True})
        self.left += gone.result()
        await send({"type": "http.response.body", "body": b'"}', "more_body": False})


class Huge:
    """ASGI app: a 200 JSON answer of ``size`` bytes, streamed in 1 MiB chunks, with or without a
    Content-Length; ``sent`` is how many bytes went out before the client stopped reading."""

    def __init__(self, size: int, declare_length: bool) -> None:
        self.size, self.declare_length, self.sent = size, declare_length, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        headers = [(b"content-type", b"application/json")]
        if self.declare_length:
            headers.append((b"content-length", str(self.size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        head, chunk = b'{"text": "', b"a" * (1 << 20)
        await send({"type": "http.response.body", "body": head, "more_body": True})
        left = self.size - len(head) - 2
        while left > 0:
            part = chunk[: min(left, len(chunk))]
            await send({"type": "http.response.body", "body": part, "more_body": True})
            self.sent += len(part)
            left -= len(part)
        await send({"type": "http.response.body", "body": b'"}', "more_body": False})
