"""API keys and tokens from the environment never reach run directories, logs, reports, errors or JSON.

Every cloud backend runs through the real CLI (``asrfair -v run --json``: debug logging, the worst
case) in a subprocess, against its fake server in this process. The server answers some requests
normally and some with an error whose body quotes back every request header and the query string
(raw, and URL-encoded as a careless server might), one variant padded so that the key straddles
the 200 characters of body an error message keeps; a second run has its credentials rejected,
which stops it. A plugin backend that puts its ``*_env`` key into exceptions covers the recorded
failure, the user-error and the internal-error paths. Then stdout, stderr, ``asrfair report`` and
``asrfair history --json``, and every file under each output folder (Parquet and DuckDB decoded:
their strings may be stored compressed) are searched for each secret: raw, base64, URL-encoded,
and either half of it (a key cut short is still a leak).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import cli
import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from conftest import install_backend_plugin, write_config
from fakes.assemblyai import assemblyai_app
from fakes.aws_transcribe import moto_s3, transcribe_app  # noqa: F401 - moto_s3 is a fixture
from fakes.azure_speech import azure_speech_app
from fakes.deepgram import deepgram_app
from fakes.google_speech import google_speech_app
from fakes.openai import openai_app
from loopback import LoopbackServer, Oracle, tone_corpus
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from harness import redaction
from harness.backends.remote import RejectedCredentials, check_status
from harness.redaction import MASK, RedactingFilter

N = 6
REGION = "eu-west-2"
KEPT = 200  # characters of an error body that check_status quotes

log = logging.getLogger(__name__)


def secret(kind: str) -> str:
    """Distinctive, and with characters that base64 and URL encoding both change."""
    return f"{kind}-LEAK/{uuid.uuid4().hex[:16]}+zz="


AWS_KEYS = {
    "AWS_ACCESS_KEY_ID": f"AKIALEAK{uuid.uuid4().hex[:12].upper()}",
    "AWS_SECRET_ACCESS_KEY": secret("aws-secret"),
    "AWS_SESSION_TOKEN": secret("aws-session"),
}


@dataclass(frozen=True)
class Cloud:
    backend: str
    env: dict[str, str]  # what the backend reads from the environment
    options: dict[str, object]


CLOUDS = [
    Cloud("openai-compatible", {"LEAK_OPENAI_KEY": secret("sk-openai")}, {"api_key_env": "LEAK_OPENAI_KEY"}),
    Cloud("deepgram", {"LEAK_DEEPGRAM_KEY": secret("dg")}, {"api_key_env": "LEAK_DEEPGRAM_KEY"}),
    Cloud(
        "assemblyai",
        {"LEAK_AAI_KEY": secret("aai")},
        {"api_key_env": "LEAK_AAI_KEY", "poll_initial": 0.01, "poll_max": 0.01},
    ),
    Cloud("azure-speech", {"LEAK_AZURE_KEY": secret("azure")}, {"api_key_env": "LEAK_AZURE_KEY"}),
    Cloud(
        "google-speech",
        {"LEAK_GOOGLE_TOKEN": secret("ya29")},
        {"access_token_env": "LEAK_GOOGLE_TOKEN", "project": "proj"},
    ),
    Cloud("aws-transcribe", AWS_KEYS, {"region": REGION, "poll_initial": 0.01, "poll_max": 0.02}),
]
PLUGIN_KEY = secret("plugin")
SECRETS = {name: value for cloud in CLOUDS for name, value in cloud.env.items()} | {"LEAK_PLUGIN_TOKEN": PLUGIN_KEY}


def forms(value: str) -> dict[str, bytes]:
    raw = value.encode()
    half = len(raw) // 2
    return {
        "raw": raw,
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw),
        "url-encoded": quote(value, safe="").encode(),
        "form-encoded": quote_plus(value).encode(),
        "first half": raw[:half],
        "second half": raw[half:],
    }


class Echo:
    """Middleware: every request quoted back in an error, or (``reject``) every one refused as unauthorised.

    Of the requests, numbers 1 and 3 of every 5 get a 400 quoting each header and the query string
    raw and URL-encoded; number 3's quote is padded so that the key straddles character ``KEPT``.
    """

    def __init__(self, app: ASGIApp, key: str, *, aws: bool = False, reject: bool = False) -> None:
        self.app, self.key, self.aws, self.reject = app, key, aws, reject
        self.seen = {"requests": 0, "echoed": 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.seen["requests"] += 1
        turn = self.seen["requests"] % 5
        if not self.reject and turn not in (1, 3):
            return await self.app(scope, receive, send)
        self.seen["echoed"] += 1
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope["query_string"].decode("latin-1")
        quoted = " | ".join(f"{k}: {v}" for k, v in headers.items()) + f" | query: {query} | as URL: "
        quoted += urlencode(headers)
        if self.reject or turn == 3:
            at = quoted.find(self.key)
            quoted = "x" * max(0, KEPT - len(self.key) // 2 - at - 1) + " " + quoted
        status = (403 if self.aws else 401) if self.reject else 400
        if self.aws:
            kind = "UnrecognizedClientException" if self.reject else "BadRequestException"
            body = {"__type": kind, "message": f"you sent {quoted}"}
            response = JSONResponse(body, status_code=status, headers={"x-amzn-ErrorType": kind})
        else:
            response = PlainTextResponse(quoted, status_code=status)
        return await response(scope, receive, send)


PLUGIN = '''
"""A third-party backend that is careless with its key: it puts it into every exception."""

import os
from typing import ClassVar

from harness.backends.base import Backend, BackendOptions, Capabilities
from harness.errors import BackendUnavailable


class LeakyOptions(BackendOptions):
    token_env: str = "LEAK_PLUGIN_TOKEN"
    fail: str = "utterance"  # utterance: some fail; init: a user error; batch: a bug (internal error)


class LeakyBackend(Backend):
    name: ClassVar[str] = "leaky"
    Options = LeakyOptions
    capabilities: ClassVar[Capabilities] = Capabilities(needs_audio=False, max_batch_size=64)

    def __init__(self, options: LeakyOptions) -> None:
        super().__init__(options)
        self.token = os.environ[options.token_env]
        if options.fail == "init":
            raise BackendUnavailable(f"leaky: the server refused token {self.token}")

    def transcribe(self, batch):
        if self.options.fail == "batch":
            raise RuntimeError(f"connection reset sending Authorization: Bearer {self.token}")
        return super().transcribe(batch)

    def transcribe_one(self, request):
        if request.utterance.id.endswith(("1", "3")):
            raise ConnectionError(f"401 for key={self.token}\\nsecond line {self.token}")
        return request.utterance.text

    def fingerprint(self):
        return {"engine": "leaky"}
'''


def install_plugin(folder: Path) -> Path:
    return install_backend_plugin(folder, "leaky_plugin", textwrap.dedent(PLUGIN), "leaky", "LeakyBackend")


def fake_app(cloud: Cloud, oracle: Oracle, s3_url: str) -> ASGIApp:
    key = next(iter(cloud.env.values()))
    match cloud.backend:
        case "openai-compatible":
            return openai_app(oracle, api_key=key)
        case "deepgram":
            return deepgram_app(oracle, api_key=key)
        case "assemblyai":
            return assemblyai_app(oracle, api_key=key, steps=("queued",))
        case "azure-speech":
            return azure_speech_app(oracle, key=key)
        case "google-speech":
            return google_speech_app(oracle, token=key)
    return transcribe_app(oracle, s3_url, region=REGION)


def make_bucket(s3_url: str) -> str:
    import boto3

    name = f"leak-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=s3_url, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def cli_env(extra: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return env | {
        "HF_HUB_OFFLINE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        **extra,
    }


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return cli.start("-v", *args, cwd=cwd, env=env, inherit=False, text=False)


@dataclass
class Done:
    label: str
    rc: int
    stdout: bytes
    stderr: bytes


def finish(jobs: dict[str, subprocess.Popen]) -> dict[str, Done]:
    done = {}
    for label, proc in jobs.items():
        out, err = proc.communicate(timeout=600)
        done[label] = Done(label, proc.returncode, out, err)
    return done


READER = """
import json
import sys
from harness.cli import main

failed = 0
for args in json.loads(sys.argv[1]):
    try:
        main(["-v", *args])
    except SystemExit as exc:
        failed += bool(exc.code)
sys.exit(failed)
"""


def read_back(commands: list[list[str]], env: dict[str, str], cwd: Path) -> Done:
    """``asrfair -v <command>`` for each command, in one process: the start-up is most of each one's time."""
    argv = [sys.executable, "-c", READER, json.dumps(commands)]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=600)
    return Done("report/history", proc.returncode, proc.stdout, proc.stderr)


def readable(path: Path) -> Iterator[tuple[str, bytes]]:
    """The file's bytes, plus its decoded strings where a format may compress them."""
    yield str(path), path.read_bytes()
    if path.suffix == ".parquet":
        yield f"{path} (decoded)", repr(pq.read_table(path).to_pylist()).encode()
    elif path.suffix == ".duckdb":
        with duckdb.connect(str(path), read_only=True) as db:
            tables = [t for (t,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall()]
            rows = [db.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables]
        yield f"{path} (decoded)", repr(rows).encode()


def leaks_in(blobs: list[tuple[str, bytes]]) -> list[str]:
    found = []
    for where, data in blobs:
        for name, value in SECRETS.items():
            for form, needle in forms(value).items():
                if needle in data:
                    found.append(f"${name} ({form}) in {where}")
    return found


@pytest.mark.slow  # 15 runs against every cloud's fake, then every file and output scanned
def test_no_secret_reaches_any_output(tmp_path: Path, moto_s3: str) -> None:
    began = time.monotonic()
    corpus = tone_corpus(tmp_path / "corpus", N)
    oracle = Oracle.for_manifest(corpus)
    path = os.pathsep.join(filter(None, [str(install_plugin(tmp_path / "plugin")), os.environ.get("PYTHONPATH")]))
    env = cli_env(SECRETS | {"PYTHONPATH": path}, tmp_path)
    servers, echoes, jobs, outputs = [], {}, {}, []
    try:
        for cloud in CLOUDS:
            for mode in ("mixed", "rejected"):
                key = next(iter(cloud.env.values()))
                aws, reject = cloud.backend == "aws-transcribe", mode == "rejected"
                echo = Echo(fake_app(cloud, oracle, moto_s3), key, aws=aws, reject=reject)
                server = LoopbackServer(echo).__enter__()
                servers.append(server)
                label = f"{cloud.backend}/{mode}"
                echoes[label] = echo
                options = dict(cloud.options)
                if cloud.backend == "aws-transcribe":
                    options |= {"bucket": make_bucket(moto_s3), "s3_endpoint_url": moto_s3}
                    options["transcribe_endpoint_url"] = server.url
                else:
                    options["base_url"] = f"{server.url}/v1" if cloud.backend == "openai-compatible" else server.url
                backend = {"name": cloud.backend, "concurrency": 2, "max_attempts": 2, "backoff_initial": 0, **options}
                folder = tmp_path / label
                folder.mkdir(parents=True)
                config = write_config(folder / "run.yaml", corpus, backend, max_failure_rate=1.0)
                outputs.append(folder / "runs")
                jobs[label] = start(["run", str(config), "--json"], env, folder)
        for fail in ("utterance", "init", "batch"):
            folder = tmp_path / f"plugin-{fail}"
            folder.mkdir()
            backend = {"name": "leaky", "token_env": "LEAK_PLUGIN_TOKEN", "fail": fail}
            config = write_config(folder / "run.yaml", corpus, backend, max_failure_rate=1.0)
            outputs.append(folder / "runs")
            jobs[f"leaky/{fail}"] = start(["run", str(config), "--json"], env, folder)
        runs = finish(jobs)
    finally:
        for server in servers:
            server.__exit__(None, None, None)

    # The runs that finished, read back the way a user would.
    finished = sorted(m.parent for out in outputs for m in out.glob("*/metrics.json"))
    commands = [["report", str(d)] for d in finished]
    commands += [["history", "--db", str(d.parent / "history.duckdb"), "--json"] for d in finished]
    reads = read_back(commands, env, tmp_path)

    blobs: list[tuple[str, bytes]] = []
    for done in [*runs.values(), reads]:
        blobs += [(f"{done.label}: stdout", done.stdout), (f"{done.label}: stderr", done.stderr)]
    files = [p for out in outputs for p in sorted(out.rglob("*")) if p.is_file()]
    for path in files:
        blobs += list(readable(path))
    leaks = leaks_in(blobs)
    log.info(
        "secrets: %d runs + %d report/history commands; %d files; %s bytes in %d outputs scanned for %d secrets "
        "in %d forms; %d leaks; %.1f s",
        len(runs),
        len(commands),
        len(files),
        f"{sum(len(data) for _, data in blobs):,}",
        len(blobs),
        len(SECRETS),
        len(forms("x")),
        len(leaks),
        time.monotonic() - began,
    )
    assert not leaks, "\n".join(leaks)

    # ... and the paths that could leak were taken.
    expected_rc = {"mixed": 0, "rejected": 2, "utterance": 0, "init": 2, "batch": 4}
    for label, done in runs.items():
        assert done.rc == expected_rc[label.split("/")[1]], (label, done.stderr.decode()[-3000:])
    assert reads.rc == 0, reads.stderr.decode()[-3000:]
    assert reads.stdout.count(b'"run_id"') == len(finished)  # each history row came back
    assert len(finished) == len(CLOUDS) + 1
    for label, echo in echoes.items():
        assert echo.seen["echoed"] > 0, label
        if label.endswith("/rejected"):
            assert b"error: backend" in runs[label].stderr and b"***" in runs[label].stderr, label
    assert b"internal error: RuntimeError: connection reset sending Authorization: Bearer ***" in (
        runs["leaky/batch"].stderr
    )
    for run_dir in finished:  # the servers' quotes and the plugin's exceptions were recorded, redacted
        errors = [e for e in pq.read_table(run_dir / "transcripts.parquet").column("error").to_pylist() if e]
        assert any(MASK in e for e in errors), run_dir


def test_redaction_masks_encoded_forms_keys_cut_short_and_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    key = redaction.keep(secret("unit"))
    assert key is not None
    assert redaction.redact(f"a {key} b {quote(key, safe='')} c {quote_plus(key)}") == f"a {MASK} b {MASK} c {MASK}"

    named, unnamed = secret("named"), secret("unnamed")
    for name, value in (("LEAK_SHORT", "en-GB"), ("LEAK_NAMED", named), ("LEAK_UNNAMED", unnamed)):
        monkeypatch.setenv(name, value)
    redaction.keep_env_options({"short_env": "LEAK_SHORT", "token_env": "LEAK_NAMED", "token": "LEAK_UNNAMED"})
    assert redaction.redact(f"en-GB {named} {unnamed}") == f"en-GB {MASK} {unnamed}"  # too short to be a key

    padded = "x" * (KEPT - len(key) // 2) + key  # the cut would fall in the middle of the key
    response = httpx.Response(401, text=padded, request=httpx.Request("POST", "http://127.0.0.1/"))
    with pytest.raises(RejectedCredentials) as caught:
        check_status(response)
    assert str(caught.value).endswith(MASK) and key[: len(key) // 2] not in str(caught.value)

    record = logging.LogRecord("harness", logging.DEBUG, __file__, 1, "sent %s", (key,), None)
    try:
        raise RuntimeError(f"refused {key}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert record.exc_info is None and key not in record.getMessage()
    assert record.getMessage().startswith(f"sent {MASK}\nTraceback") and f"RuntimeError: refused {MASK}" in record.msg


@pytest.mark.slow  # runs against several fakes, then a scan
def test_keys_written_into_the_config_reach_no_output(tmp_path: Path) -> None:
    """Issue 29: a key in ``base_url`` (userinfo, query string) or in Deepgram ``params`` was copied
    into config.yaml, metrics.json, both reports, the history database and the debug log. Three runs
    through the real CLI (``-v``: debug logging), read back by ``report`` and ``history``, every file
    and every output scanned for each key in every form, as above."""
    password, query_key, param_key = secret("url-pass"), secret("url-query"), secret("dg-param")
    written = {"URL_PASSWORD": password, "URL_QUERY_KEY": query_key, "PARAM_KEY": param_key}
    corpus = tone_corpus(tmp_path / "corpus", N)
    oracle = Oracle.for_manifest(corpus)
    env = cli_env({}, tmp_path)
    with (
        LoopbackServer(openai_app(oracle, api_key=None)) as openai,
        LoopbackServer(deepgram_app(oracle, api_key=None)) as deepgram,
    ):
        host = openai.url.removeprefix("http://")
        runs = {
            "userinfo": {"name": "openai-compatible", "base_url": f"http://asr:{quote(password, safe='')}@{host}/v1"},
            "query": {"name": "openai-compatible", "base_url": f"{openai.url}/v1?api_key={quote(query_key, safe='')}"},
            "params": {
                "name": "deepgram",
                "base_url": deepgram.url,
                "params": {"token": param_key, "keyterm": "alpha"},
            },
        }
        jobs, outputs = {}, []
        for label, backend in runs.items():
            folder = tmp_path / label
            folder.mkdir()
            options = {"api_key_env": None, "max_attempts": 1, **backend}
            config = write_config(folder / "run.yaml", corpus, options, max_failure_rate=1.0)
            outputs.append(folder / "runs")
            jobs[label] = start(["run", str(config), "--json"], env, folder)
        runs_done = finish(jobs)
    finished = sorted(m.parent for out in outputs for m in out.glob("*/metrics.json"))
    commands = [["report", str(d)] for d in finished]
    commands += [["history", "--db", str(d.parent / "history.duckdb"), "--json"] for d in finished]
    reads = read_back(commands, env, tmp_path)

    assert {label: done.rc for label, done in runs_done.items()} == dict.fromkeys(runs, 0)
    assert reads.rc == 0 and len(finished) == len(runs), reads.stderr.decode()[-2000:]
    blobs: list[tuple[str, bytes]] = []
    for done in [*runs_done.values(), reads]:
        blobs += [(f"{done.label}: stdout", done.stdout), (f"{done.label}: stderr", done.stderr)]
    files = [p for out in outputs for p in sorted(out.rglob("*")) if p.is_file()]
    for path in files:
        blobs += list(readable(path))
    leaks = [
        f"{name} ({form}) in {where}"
        for where, data in blobs
        for name, value in written.items()
        for form, needle in forms(value).items()
        if needle in data
    ]
    log.info("keys in the config: %d runs, %d files, %d outputs scanned; %d leaks", len(runs), len(files), len(blobs),
             len(leaks))
    assert not leaks, "\n".join(leaks)
    # What the user needs to see is still there: the host, the parameters that are no credential.
    userinfo = json.loads(next((tmp_path / "userinfo" / "runs").glob("*/metrics.json")).read_text())
    assert userinfo["provenance"]["backend"]["fingerprint"]["base_url"] == f"http://{MASK}@{host}/v1"
    params = json.loads(next((tmp_path / "params" / "runs").glob("*/metrics.json")).read_text())
    assert params["provenance"]["backend"]["fingerprint"]["params"] == {"token": MASK, "keyterm": "alpha"}
    assert params["failures"]["count"] == 0 and userinfo["failures"]["count"] == 0


def test_scrub_masks_credentials_in_urls_and_named_options_only() -> None:
    options = {
        "base_url": "https://bob:pw@api.example/v1?api_key=K1&model=m&X-Amz-Signature=S",
        "api_key_env": "OPENAI_API_KEY",  # names a variable: kept, it is what the user must set
        "params": {"token": "T", "keyterm": "alpha", "keywords": ["a:1"], "accessToken": "A"},
        "keep": True,
    }
    assert redaction.scrub(options) == {
        "base_url": f"https://{MASK}@api.example/v1?api_key={MASK}&model=m&X-Amz-Signature={MASK}",
        "api_key_env": "OPENAI_API_KEY",
        "params": {"token": MASK, "keyterm": "alpha", "keywords": ["a:1"], "accessToken": MASK},
        "keep": True,
    }
    line = "POST http://u:pw@h:1/v1/listen?model=a&token=t0k&keyterm=k failed"
    assert redaction.redact(line) == f"POST http://{MASK}@h:1/v1/listen?model=a&token={MASK}&keyterm=k failed"
