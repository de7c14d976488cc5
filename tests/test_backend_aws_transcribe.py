"""aws-transcribe through the real pipeline against real servers on 127.0.0.1: moto's S3 server (the
S3 wire protocol) and a Transcribe stand-in (tests/fakes/aws_transcribe.py), since moto's own
Transcribe never reads the media or writes a transcript."""

from __future__ import annotations

import builtins
import logging
import socket
import uuid
from pathlib import Path

import boto3
import pytest
from conftest import write_config
from fakes.aws_transcribe import moto_s3, transcribe_app  # noqa: F401 - moto_s3 is a fixture
from loopback import LoopbackServer, Oracle, tone_corpus
from starlette.responses import JSONResponse

from harness.backends.aws_transcribe import AWSTranscribeBackend
from harness.backends.base import Registry
from harness.backends.remote import RejectedCredentials, RemoteError
from harness.config import load_config
from harness.data.manifest import Utterance
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run

REGION = "eu-west-2"
ACCESS_KEY = "AKIAASRFAIRTEST0001"
SECRET_KEY = "s3cr3t/asrfair+never-written-7f3a9c"
SESSION_TOKEN = "session-token-asrfair-do-not-leak-0451"
N = 12


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials through boto3's standard chain; no profile, no instance metadata, no network."""
    for name in (
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_TRANSCRIBE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the option `region` must win
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def s3_client(url: str):
    return boto3.client(
        "s3", endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )


@pytest.fixture
def bucket(moto_s3: str) -> str:
    name = f"asrfair-{uuid.uuid4().hex[:12]}"
    s3_client(moto_s3).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def objects(moto_s3: str, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3_client(moto_s3).list_objects_v2(Bucket=bucket).get("Contents", []))


def jobs_left(url: str) -> list[dict]:
    """ListTranscriptionJobs over the wire, signed like any client."""
    client = boto3.client(
        "transcribe", endpoint_url=url, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client.list_transcription_jobs()["TranscriptionJobSummaries"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return tone_corpus(tmp_path, N)


@pytest.fixture
def oracle(corpus: Path) -> Oracle:
    return Oracle.for_manifest(corpus)


def aws_config(
    tmp_path: Path,
    corpus: Path,
    s3_url: str,
    transcribe_url: str,
    bucket: str,
    failures: float = 0.5,
    **options: object,
):
    backend = {
        "name": "aws-transcribe",
        "region": REGION,
        "bucket": bucket,
        "s3_endpoint_url": s3_url,
        "transcribe_endpoint_url": transcribe_url,
        "poll_initial": 0.01,
        "poll_max": 0.05,
        "backoff_initial": 0.01,
        "timeout": 5,
        **options,
    }
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=failures))


def test_every_transcript_comes_back_and_nothing_is_left_behind(tmp_path, corpus, oracle, moto_s3, bucket):
    app = transcribe_app(oracle, moto_s3, region=REGION, pending_polls=2)
    with LoopbackServer(app) as server:
        outcome = run(prepare(aws_config(tmp_path, corpus, moto_s3, server.url, bucket, concurrency=4)))
        assert jobs_left(server.url) == []
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert outcome.metrics["failures"]["count"] == 0
    assert objects(moto_s3, bucket) == []
    assert len(app.state.starts) == N and app.state.calls["DeleteTranscriptionJob"] == N
    assert app.state.calls["GetTranscriptionJob"] == 3 * N  # QUEUED -> IN_PROGRESS, IN_PROGRESS, COMPLETED
    assert app.state.peak["jobs"] == 4  # `concurrency` jobs in flight at once, never more
    assert app.state.regions == {REGION}
    for start in app.state.starts:
        name = start["TranscriptionJobName"]
        assert start["LanguageCode"] == "en-US"  # the manifest's "en", mapped
        assert (start["MediaFormat"], start["MediaSampleRateHertz"]) == ("wav", 16_000)
        assert start["Media"]["MediaFileUri"] == f"s3://{bucket}/asrfair/{name}.wav"
        assert (start["OutputBucketName"], start["OutputKey"]) == (bucket, f"asrfair/{name}.json")
        assert "Settings" not in start
    assert len({s["TranscriptionJobName"] for s in app.state.starts}) == N


def test_keep_leaves_media_transcripts_and_jobs_and_settings_are_sent(tmp_path, corpus, oracle, moto_s3, bucket):
    app = transcribe_app(oracle, moto_s3, region=REGION, vocabularies=["accents-v1"])
    with LoopbackServer(app) as server:
        config = aws_config(
            tmp_path,
            corpus,
            moto_s3,
            server.url,
            bucket,
            keep=True,
            prefix="bench/run1/",
            language_code="en-GB",
            vocabulary_name="accents-v1",
        )
        outcome = run(prepare(config))
        left = jobs_left(server.url)
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert len(left) == N and {j["TranscriptionJobStatus"] for j in left} == {"COMPLETED"}
    keys = objects(moto_s3, bucket)
    assert len(keys) == 2 * N and all(k.startswith("bench/run1/asrfair-") for k in keys)
    assert sum(k.endswith(".wav") for k in keys) == N and sum(k.endswith(".json") for k in keys) == N
    for start in app.state.starts:
        assert start["LanguageCode"] == "en-GB"
        assert start["Settings"] == {"VocabularyName": "accents-v1"}
    fingerprint = outcome.metrics["provenance"]["backend"]["fingerprint"]
    assert (fingerprint["region"], fingerprint["language_code"], fingerprint["vocabulary_name"]) == (
        REGION,
        "en-GB",
        "accents-v1",
    )
    assert bucket not in str(fingerprint) and "bench/run1/" not in str(fingerprint)


def test_a_failed_job_is_that_utterances_failure_with_its_reason(tmp_path, corpus, oracle, moto_s3, bucket):
    def fails_on_alpha(wav: bytes) -> str | None:  # clips 0 and 6: both "northern"
        text = oracle(wav)
        return None if text.startswith("alpha") else text

    reason = "Your audio file must have a speech segment long enough in duration to perform automatic language ID."
    app = transcribe_app(fails_on_alpha, moto_s3, region=REGION, failure_reason=reason)
    with LoopbackServer(app) as server:
        outcome = run(prepare(aws_config(tmp_path, corpus, moto_s3, server.url, bucket)))
        assert jobs_left(server.url) == []  # failed jobs are cleaned up too
    failures = outcome.metrics["failures"]
    assert failures["count"] == N // 6
    error = failures["examples"][0]["error"]
    assert error.startswith("RemoteError: poll: transcription job asrfair-") and f"FAILED: {reason}" in error
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    assert {s["label"]: s["failed"] for s in accent["slices"]} == {"northern": N // 6, "southern": 0}
    assert objects(moto_s3, bucket) == []


def test_throttling_and_lost_answers_are_retried_to_success(tmp_path, corpus, oracle, moto_s3, bucket):
    app = transcribe_app(oracle, moto_s3, region=REGION, throttle=0.25, lose_every=3, seed=5)
    with LoopbackServer(app) as server:
        config = aws_config(tmp_path, corpus, moto_s3, server.url, bucket, max_attempts=10, concurrency=6)
        outcome = run(prepare(config))
        assert jobs_left(server.url) == []
    assert outcome.metrics["failures"]["count"] == 0
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert app.state.calls["throttled"] > 0 and app.state.calls["lost_start"] == N // 3
    assert len(app.state.starts) == N  # a start whose answer was lost is not started twice
    assert objects(moto_s3, bucket) == []


def test_throttling_past_max_attempts_fails_the_utterance_naming_the_step(tmp_path, corpus, oracle, moto_s3, bucket):
    app = transcribe_app(oracle, moto_s3, region=REGION, throttle=1.0)
    with LoopbackServer(app) as server:
        config = aws_config(tmp_path, corpus, moto_s3, server.url, bucket, max_attempts=2, failures=1.0)
        outcome = run(prepare(config))
    failures = outcome.metrics["failures"]
    assert failures["count"] == N
    assert failures["examples"][0]["error"] == (
        "RemoteError: start: ThrottlingException: Rate exceeded (gave up after 2 attempts)"
    )
    assert objects(moto_s3, bucket) == []  # the media was uploaded, then deleted


def test_a_missing_bucket_stops_the_run_with_a_clear_message(tmp_path, corpus, oracle, moto_s3):
    app = transcribe_app(oracle, moto_s3, region=REGION)
    with LoopbackServer(app) as server:
        prepared = prepare(aws_config(tmp_path, corpus, moto_s3, server.url, "asrfair-no-such-bucket"))
        with pytest.raises(BackendUnavailable) as caught:
            run(prepared)
    assert str(caught.value) == (
        "backend 'aws-transcribe': upload: bucket 'asrfair-no-such-bucket' does not exist (NoSuchBucket); "
        f"create it in {REGION} or fix option 'bucket'"
    )
    assert app.state.starts == []


def test_credentials_come_from_the_environment_only_and_are_never_written(
    tmp_path, corpus, oracle, moto_s3, bucket, caplog
):
    """Even when the service quotes the request's Authorization and token headers back in an error."""
    inner = transcribe_app(oracle, moto_s3, region=REGION)
    seen = {"starts": 0}

    async def echoes_credentials(scope, receive, send):
        headers = dict(scope["headers"])
        if headers.get(b"x-amz-target") == b"Transcribe.StartTranscriptionJob":
            seen["starts"] += 1
            if seen["starts"] % 4 == 0:
                quoted = f"{headers.get(b'authorization', b'').decode()} {headers.get(b'x-amz-security-token', b'')}"
                body = {"__type": "BadRequestException", "message": f"bad request: {quoted}"}
                return await JSONResponse(body, status_code=400)(scope, receive, send)
        return await inner(scope, receive, send)

    caplog.set_level(logging.DEBUG)
    with LoopbackServer(echoes_credentials) as server:
        outcome = run(prepare(aws_config(tmp_path, corpus, moto_s3, server.url, bucket)))
        assert jobs_left(server.url) == []
    failures = outcome.metrics["failures"]
    assert failures["count"] == N // 4
    assert "Credential=***/" in failures["examples"][0]["error"] and "***" in failures["examples"][0]["error"]
    assert objects(moto_s3, bucket) == []
    written = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert written
    for path in written:
        data = path.read_bytes()
        for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
            assert secret.encode() not in data, (secret, path)
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
        assert secret not in caplog.text

    with pytest.raises(BackendUnavailable, match=r"aws_secret_access_key.*unknown key"):
        Registry.default().create("aws-transcribe", {"bucket": "b-1", "aws_secret_access_key": "x"})


def test_no_credentials_is_a_one_line_error(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(BackendUnavailable, match="no AWS credentials found; boto3 looks in AWS_ACCESS_KEY_ID"):
        Registry.default().create("aws-transcribe", {"bucket": "bkt", "region": REGION})


def test_a_missing_boto3_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_boto3(name, *args, **kwargs):
        if name.split(".")[0] in ("boto3", "botocore"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    with pytest.raises(BackendUnavailable, match=r"needs boto3: pip install 'asr-fairness-harness\[aws\]'"):
        Registry.default().create("aws-transcribe", {"bucket": "bkt"})


def make(**options: object) -> AWSTranscribeBackend:
    backend = Registry.default().create("aws-transcribe", {"bucket": "bkt", "region": REGION, **options})
    assert isinstance(backend, AWSTranscribeBackend)
    return backend


def test_the_fingerprint_holds_what_changes_the_output_and_nothing_else():
    def fingerprint(**options: object) -> dict:
        backend = make(**options)
        backend.close()
        return backend.fingerprint()

    base = fingerprint()
    assert base == {
        "engine": "aws-transcribe",
        "region": REGION,
        "endpoint": None,
        "language_code": None,
        "vocabulary_name": None,
        "media_format": "wav",
    }
    same = {"bucket": "other", "prefix": "x/", "concurrency": 64, "keep": True, "s3_endpoint_url": "http://s3"}
    assert fingerprint(**same) == base
    for options in ({"region": "us-west-2"}, {"language_code": "en-GB"}, {"vocabulary_name": "v"}):
        assert fingerprint(**options) != base, options
    assert fingerprint(region=None)["region"] == "us-east-1"  # boto3's chain: AWS_DEFAULT_REGION


def test_language_codes_and_error_classes():
    from botocore.exceptions import ClientError, EndpointConnectionError

    backend, forced = make(), make(language_code="en-IN")
    backend.close()
    forced.close()

    def utt(language: str) -> Utterance:
        return Utterance(id="u", audio=Path("a.wav"), text="t", language=language)

    assert backend.language_for(utt("en")) == "en-US"
    assert backend.language_for(utt("en-GB")) == "en-GB"
    assert backend.language_for(utt("en_gb")) == "en-GB"
    assert backend.language_for(utt("pt")) == "pt-BR"
    assert backend.language_for(utt("xx")) is None
    assert forced.language_for(utt("fr")) == "en-IN"
    assert backend.request_key(utt("en"), "k") != backend.request_key(utt("en-GB"), "k")

    def client_error(code: str, status: int) -> ClientError:
        response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "PutObject")  # type: ignore[arg-type]

    for code, status, kind, retryable in [
        ("SlowDown", 503, RemoteError, True),
        ("LimitExceededException", 400, RemoteError, True),
        ("InternalError", 500, RemoteError, True),
        ("NoSuchKey", 404, RemoteError, False),
        ("BadRequestException", 400, RemoteError, False),
        ("AccessDenied", 403, RejectedCredentials, False),
        ("UnrecognizedClientException", 400, RejectedCredentials, False),
    ]:
        error = backend._classify("upload", client_error(code, status))
        assert type(error) is kind and error.retryable is retryable, code
        assert str(error).startswith(f"upload: {code}: m")
    dropped = backend._classify("poll", EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert dropped.retryable and str(dropped).startswith("poll: EndpointConnectionError")


def test_an_unreachable_transcribe_endpoint_fails_each_utterance_and_cleans_up(
    tmp_path, corpus, moto_s3, bucket, caplog
):
    with socket.socket() as probe:  # bound and never listening: refused, and no other test can take the port
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
        config = aws_config(tmp_path, corpus, moto_s3, closed, bucket, max_attempts=2, failures=1.0)
        outcome = run(prepare(config))
    failures = outcome.metrics["failures"]
    assert failures["count"] == N
    error = failures["examples"][0]["error"]
    assert error.startswith("RemoteError: start: EndpointConnectionError: Could not connect to the endpoint URL")
    assert error.endswith("(gave up after 2 attempts)")
    assert objects(moto_s3, bucket) == []  # the uploads were deleted although the jobs never started
    assert "could not delete job asrfair-" in caplog.text
