"""``asrfair serve``: a configured backend behind the OpenAI transcription protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import app, handle_errors


@app.command("serve")
@handle_errors
def serve_command(
    backend: Annotated[
        Path, typer.Option("--backend", "-b", help="YAML with a 'backend:' section (a run config works)")
    ],
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port")] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="interface to bind; 0.0.0.0 exposes it to the network")
    ] = "127.0.0.1",
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="the 'model' clients must send (default: the backend's name)")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="require 'Authorization: Bearer $VAR' from clients")
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="largest upload; a larger one gets 413")
    ] = 25.0,
    request_timeout: Annotated[
        float,
        typer.Option("--request-timeout", min=0.001, help="seconds from upload to answer, queueing included; then 504"),
    ] = 120.0,
    max_audio_seconds: Annotated[
        float, typer.Option("--max-audio-seconds", min=0.001, help="longest audio decoded, checked before decoding")
    ] = 1800.0,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", min=0.001, help="seconds for a request's headers; then 408")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option("--body-timeout", min=0.001, help="seconds for a request's whole body; then 408")
    ] = 60.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="open connections; more get 503 and are closed")
    ] = 256,
) -> None:
    """Serve a configured backend over the OpenAI transcription protocol (POST /v1/audio/transcriptions)."""
    from harness.serve import Limits, bind, create_backend, read_backend_spec, serve, server_key

    key = server_key(api_key_env)
    limits = Limits(
        max_upload_mb=max_upload_mb,
        max_audio_s=max_audio_seconds,
        request_timeout=request_timeout,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
    )
    spec = read_backend_spec(backend)
    sock = bind(host, port)  # before the model loads: a bad or busy port is a one-line exit 2 at once
    try:
        engine = create_backend(backend, spec)
    except BaseException:
        sock.close()
        raise
    serve(engine, sock, model_name=model_name or engine.name, api_key=key, limits=limits)
