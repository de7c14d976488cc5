"""Issue 26: every backend states its model and decoding options in provenance, and one locale map serves all."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.base import Registry
from harness.backends.remote import DEFAULT_LOCALES, to_locale
from harness.data.manifest import Utterance

# Minimal options per remote backend: none of them touches the network when constructed.
REMOTE = {
    "openai-compatible": {"base_url": "http://127.0.0.1:9/v1"},
    "deepgram": {},
    "assemblyai": {},
    "google-speech": {"project": "p"},
    "azure-speech": {"region": "westeurope"},
    "aws-transcribe": {"bucket": "asrfair-test", "region": "eu-west-1"},
}


@pytest.fixture
def credentials(monkeypatch):
    for name in ("OPENAI_API_KEY", "DEEPGRAM_API_KEY", "ASSEMBLYAI_API_KEY", "AZURE_SPEECH_KEY"):
        monkeypatch.setenv(name, "test-key")
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "test-token")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")


@pytest.mark.parametrize("name", [*REMOTE, "stub", "pocketsphinx"])
def test_provenance_names_a_model_and_the_decoding_options(name, credentials):
    backend = Registry.default().create(name, REMOTE.get(name, {}))
    try:
        info = backend.info()
    finally:
        backend.close()
    assert info.model and info.model != "None"
    assert info.decoding, f"{name}: provenance.backend.decoding is empty"
    assert not set(info.decoding) & {"engine", "backend", "base_url", "endpoint", "model"}


def test_a_configured_model_is_the_one_stated(credentials):
    deepgram = Registry.default().create("deepgram", {"model": "nova-3"})
    assembly = Registry.default().create("assemblyai", {"speech_models": ["universal"]})
    assert (deepgram.info().model, assembly.info().model) == ("nova-3", "universal")


def test_one_locale_map_for_every_backend_that_needs_a_locale(credentials):
    utt = Utterance(id="u", audio=Path("a.wav"), text="t", speaker="s", language="es")
    aws = Registry.default().create("aws-transcribe", REMOTE["aws-transcribe"])
    azure = Registry.default().create("azure-speech", REMOTE["azure-speech"])
    google = Registry.default().create("google-speech", REMOTE["google-speech"])
    assert aws.language_for(utt) == azure.locale("es") == google.language_codes("es")[0] == "es-ES"
    assert to_locale("en_gb", DEFAULT_LOCALES) == "en-GB" and to_locale("xx", DEFAULT_LOCALES) is None
