"""The issue-29 attacks on ``asrfair serve``, measured (docs/RELIABILITY.md, "Hardening (issue 29): serve").

Each starts the real command (``stub`` backend) in a subprocess with ``--tree`` first on its
``PYTHONPATH``, so the same script measures an older checkout, and prints one JSON line:

  decode  N concurrent uploads of a long silent FLAC (``--hide-length`` zeroes the header's length);
          the server's peak RSS, the answers, the tracebacks it logged
  slow    1,100 half-sent requests (half stop mid-header, half mid-body) against a server limited to
          1,024 file descriptors, then a normal client every 0.5 s for ``--window`` seconds

Usage::

    python benchmarks/serve_abuse.py [--tree DIR] decode [--hours 10] [--concurrent 5] [--hide-length]
    python benchmarks/serve_abuse.py [--tree DIR] slow [--window 75]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RATE = 16_000
HALF_HEADERS = b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Ty"
HALF_BODY = (
    b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
    b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'
)


class Served:
    """``asrfair serve`` with the stub backend on a free port, optionally with a file-descriptor limit."""

    def __init__(self, tree: Path, fd_limit: int | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory()
        config = Path(self._folder.name) / "serve.yaml"
        config.write_text("backend: {name: stub}\n")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "harness", "serve", "-b", str(config), "--port", str(self.port)]
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))) if fd_limit else None
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        self.url = f"http://127.0.0.1:{self.port}/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{self.url}/models", timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"serve did not start: {self.stop()}") from None
                time.sleep(0.2)

    def peak_rss_mb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) // 1024
        return -1

    def stop(self) -> str:
        """Its stderr, after SIGTERM (SIGKILL if it has not stopped within a minute)."""
        self.process.terminate()
        try:
            err = self.process.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            self.process.kill()
            err = "KILLED " + self.process.communicate()[1]
        self._folder.cleanup()
        return err


def silent_flac(hours: float, hide_length: bool) -> bytes:
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", RATE, 1, format="FLAC") as out:
        for _ in range(round(hours * 60)):
            out.write(np.zeros(60 * RATE, dtype="float32"))
    data = bytearray(buffer.getvalue())
    if hide_length:  # STREAMINFO's total samples: the low 36 bits of bytes 18-25
        data[21] &= 0xF0
        data[22:26] = bytes(4)
    return bytes(data)


def wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * np.ones(int(seconds * RATE)), RATE, format="WAV")
    return buffer.getvalue()


def answer(response: httpx.Response) -> str:
    try:
        return f"{response.status_code} {response.json()}"[:160]
    except ValueError:
        return f"{response.status_code} PLAIN TEXT {response.text[:60]!r}"


def decode(args: argparse.Namespace) -> dict:
    data = silent_flac(args.hours, args.hide_length)
    served = Served(args.tree)
    at_rest = served.peak_rss_mb()

    def send(_: int) -> str:
        form = {"model": "stub", "language": "en"}
        files = {"file": ("silence.flac", data)}
        return answer(httpx.post(f"{served.url}/audio/transcriptions", data=form, files=files, timeout=900))

    start = time.monotonic()
    with ThreadPoolExecutor(args.concurrent) as pool:
        answers = Counter(pool.map(send, range(args.concurrent)))
    seconds = time.monotonic() - start
    peak = served.peak_rss_mb()
    err = served.stop()
    return {
        "hours": args.hours,
        "upload_mb": round(len(data) / 1e6, 2),
        "hidden_length": args.hide_length,
        "concurrent": args.concurrent,
        "rss_at_rest_mb": at_rest,
        "peak_rss_mb": peak,
        "seconds": round(seconds, 1),
        "answers": dict(answers),
        "tracebacks": err.count("Traceback"),
    }


def slow(args: argparse.Namespace) -> dict:
    served = Served(args.tree, fd_limit=1024)
    held: list[socket.socket] = []
    for i in range(1100):
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        sock.sendall(HALF_HEADERS if i % 2 else HALF_BODY)
        held.append(sock)
    normal: Counter = Counter()
    slow_answers: Counter = Counter()
    first_ok = None
    start = time.monotonic()
    while time.monotonic() - start < args.window:
        try:
            form = {"model": "stub", "language": "en"}
            response = httpx.post(f"{served.url}/audio/transcriptions", data=form, files={"file": ("a.wav", wav(0.1))})
            normal[str(response.status_code)] += 1
            if response.status_code == 200 and first_ok is None:
                first_ok = round(time.monotonic() - start, 1)
        except httpx.HTTPError as exc:
            normal[type(exc).__name__] += 1
        with selectors.DefaultSelector() as selector:  # select() cannot take descriptors over 1,024
            for sock in held:
                selector.register(sock, selectors.EVENT_READ)
            ready = [key.fileobj for key, _ in selector.select(0)]
        for sock in ready:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b"reset"
            slow_answers[data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1") else data[:5].decode()] += 1
            held.remove(sock)
            sock.close()
        time.sleep(0.5)
    still_open = len(held)
    for sock in held:
        sock.close()
    time.sleep(3)
    err = served.stop()
    return {
        "normal_client": dict(normal),
        "first_normal_200_after_s": first_ok,
        "half_sent_answers": dict(slow_answers),
        "half_sent_still_open_at_end": still_open,
        "tracebacks": err.count("Traceback"),
        "log_lines": len(err.splitlines()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose harness is served")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("decode")
    one.add_argument("--hours", type=float, default=10.0)
    one.add_argument("--concurrent", type=int, default=5)
    one.add_argument("--hide-length", action="store_true")
    two = commands.add_parser("slow")
    two.add_argument("--window", type=float, default=75.0)
    args = parser.parse_args()
    result = {"decode": decode, "slow": slow}[args.command](args)
    print(json.dumps({"tree": str(args.tree), "command": args.command, **result}))


if __name__ == "__main__":
    main()
