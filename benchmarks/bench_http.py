"""Throughput of a remote backend against a loopback OpenAI-compatible server with fixed latency.

The server (a separate process, so it does not share the harness's GIL) answers every request
after ``--latency`` seconds. With ``--concurrency`` requests in flight the ideal throughput is
concurrency / latency. Measured in the same run:

  (a) baseline: a bare httpx.AsyncClient posting the same WAV forms with the same concurrency
  (b) the harness: ``openai-compatible`` through the executor (decode, WAV encoding, rate limiter,
      retries, cache writes), 1,000 utterances by default
  (c) the harness with 30% injected faults (500, 429 + Retry-After, slow answers past the timeout):
      the run must complete with every utterance accounted for, ok or failed

Prints b/ideal (goal >= 0.80) and b/a. Usage::

    python benchmarks/bench_http.py [--requests 1000] [--concurrency 32] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the loopback server and fake API used by the tests

from harness.backends.base import Registry  # noqa: E402
from harness.backends.remote import wav_bytes  # noqa: E402
from harness.data.manifest import load_manifest  # noqa: E402
from harness.files import TranscriptCache  # noqa: E402
from harness.transcribe.local import transcribe_all  # noqa: E402


def serve_forever(port: int, latency: float, faults: float, ready: multiprocessing.Event) -> None:
    import uvicorn
    from fakes.openai import openai_app
    from loopback import Faults

    third = faults / 3
    app = Faults(latency=latency, error_500=third, error_429=third, slow=third, retry_after=0.05, slow_seconds=1.0)
    config = uvicorn.Config(
        app.wrap(openai_app(lambda wav: "ok", api_key=None)),
        host="127.0.0.1",
        port=port,
        log_level="critical",  # injected drops and timeouts are expected
        backlog=4096,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    ready.set()
    server.run()


class Server:
    def __init__(self, latency: float, faults: float = 0.0) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        ready = multiprocessing.Event()
        self.process = multiprocessing.Process(target=serve_forever, args=(self.port, latency, faults, ready))
        self.process.start()
        ready.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("benchmark server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(10)


def make_corpus(folder: Path, count: int) -> Path:
    clip = folder / "clip.wav"
    sf.write(clip, 0.1 * np.sin(np.arange(4800) / 5), 16_000)  # 0.3 s
    lines = [
        json.dumps({"id": f"u{i:05d}", "audio": str(clip), "text": "ok", "speaker": f"s{i % 50}"}) for i in range(count)
    ]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "manifest.jsonl"


async def bare_httpx(url: str, count: int, concurrency: int) -> float:
    audio = wav_bytes(0.1 * np.sin(np.arange(4800, dtype=np.float32) / 5), 16_000)
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one() -> None:
            async with slots:
                form = {"model": "whisper-1", "response_format": "json", "language": "en"}
                response = await client.post(f"{url}/audio/transcriptions", data=form, files={"file": ("a.wav", audio)})
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - start


def harness_run(url: str, manifest: Path, cache_dir: Path, concurrency: int, **options: object) -> tuple[float, dict]:
    backend = Registry.default().create(
        "openai-compatible", {"base_url": url, "api_key_env": None, "concurrency": concurrency, **options}
    )
    utterances = load_manifest(manifest).utterances
    cache = TranscriptCache(cache_dir / f"{time.time_ns()}.sqlite")
    try:
        start = time.perf_counter()
        result = transcribe_all(utterances, backend, cache)
        elapsed = time.perf_counter() - start
    finally:
        cache.close()
        backend.close()
    statuses = [t.status for t in result.transcripts.values()]
    return elapsed, {"ok": statuses.count("ok"), "failed": statuses.count("error"), "accounted": len(statuses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--faults", type=float, default=0.3)
    args = parser.parse_args()
    ideal = args.concurrency / args.latency
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.requests} requests, concurrency {args.concurrency}, {args.latency * 1000:g} ms latency")
    print(f"ideal: {ideal:.0f} req/s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = make_corpus(folder, args.requests)
        with Server(args.latency) as server:
            asyncio.run(bare_httpx(server.url, 64, args.concurrency))  # warm up the server
            bare = args.requests / asyncio.run(bare_httpx(server.url, args.requests, args.concurrency))
            elapsed, counts = harness_run(server.url, manifest, folder, args.concurrency)
        ours = args.requests / elapsed
        print(f"(a) bare httpx:         {bare:7.1f} req/s  ({bare / ideal:.0%} of ideal)")
        print(f"(b) asrfair remote:     {ours:7.1f} req/s  ({ours / ideal:.0%} of ideal, goal >= 80%)  {counts}")
        print(f"    b/a = {ours / bare:.2f}")
        with Server(args.latency, faults=args.faults) as server:
            elapsed, counts = harness_run(
                server.url, manifest, folder, args.concurrency, timeout=0.5, max_attempts=3, backoff_initial=0.05
            )
        complete = counts["accounted"] == args.requests
        print(
            f"(c) {args.faults:.0%} faults:           {args.requests / elapsed:7.1f} req/s  {counts}  "
            f"every utterance accounted: {complete}"
        )


if __name__ == "__main__":
    main()
