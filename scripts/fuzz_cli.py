"""Fuzz every ``asrfair`` command with broken inputs: 0 segfaults, 0 internal errors, 0 hangs (issue 29).

Each case builds one broken input in its own folder — a manifest, run config, slice file, dataset
card, run directory (metrics.json, utterances.parquet, transcripts.parquet, config.yaml,
provenance.json), baseline, history database, or option value — and runs one command on it through
the CLI, in-process. The contract: exit 0, 1, 2 or 3 with no traceback; exit 4 (internal error), a
traceback, a crash of the process (segfault) or a case over ``--timeout`` seconds (hang) is a defect.

Cases run in worker processes that report each case as it starts and ends; the parent restarts a
worker that crashed or went silent and records the case. Cases are numbered and seeded: ``--only N``
reruns one. ``make fuzz`` runs the full 10,000 (cases 1000-10999); tests/reliability/test_fuzz_cli.py runs a subset.

    nice -n 10 python scripts/fuzz_cli.py --cases 10000 --first 1000 --workers 4 --out runs/fuzz-result.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
OK_CODES = {0, 1, 2, 3}
NASTY: list[Any] = [
    None, True, False, 0, -1, 1, 2, 0.5, -0.5, 1e-300, 1e300, 2**64, 10**7, math.nan, math.inf, -math.inf,
    "", " ", "x", "ü" * 3, "\u2028", "a\nb", "../../etc/passwd", "x" * 5000, [], [1, "a"], {}, {"a": {"b": []}},
    0.9999999999999999, "nan", "1e-300", "-1",
]  # fmt: skip
ROWS = 24


@dataclass
class Workspace:
    """The valid inputs every case starts from, made once per worker."""

    root: Path
    manifest_rows: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: Path = Path()
    baseline: Path = Path()
    history: Path = Path()

    @classmethod
    def build(cls, root: Path) -> Workspace:
        from harness.cli import app  # noqa: F401  (import cost paid once)
        from harness.config import load_config
        from harness.decide.gate import save_baseline
        from harness.pipeline import prepare, run

        data = root / "data"
        data.mkdir(parents=True)
        t = np.arange(8000) / 16000
        sf.write(data / "tone.wav", 0.1 * np.sin(2 * np.pi * 440 * t), 16000)
        rows = [
            {"id": f"u{i}", "audio": "tone.wav", "text": "the quick brown fox jumps", "speaker": f"s{i % 6}",
             "accent": "ab"[i % 2], "device": "xyz"[i % 3]}
            for i in range(ROWS)
        ]  # fmt: skip
        (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        config = {
            "version": 1, "name": "fuzz", "dataset": str(data / "manifest.jsonl"),
            "backend": {"name": "stub", "default_rate": 0.1},
            "stats": {"min_speakers": 1, "min_words": 1, "bootstrap": 50, "permutations": 50},
            "gate": {"bootstrap": 50, "flips": 100}, "output": str(root / "runs"), "history": str(root / "h.duckdb"),
        }  # fmt: skip
        (root / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        run_dir = run(prepare(load_config(root / "run.yaml"))).paths.root
        baseline = save_baseline(run_dir, root / "baseline" / "base.json")
        return cls(root, rows, config, run_dir, baseline, root / "h.duckdb")


# ------------------------------------------------------------------------------------------------- mutations


def nasty(rng: random.Random) -> Any:
    return rng.choice(NASTY)


def mutate_value(rng: random.Random, data: Any, depth: int = 0) -> Any:
    """``data`` with one value somewhere replaced, deleted or a key added."""
    if isinstance(data, dict) and data and depth < 6 and rng.random() < 0.7:
        key = rng.choice(list(data))
        out = dict(data)
        roll = rng.random()
        if roll < 0.15:
            del out[key]
        elif roll < 0.25:
            out[rng.choice(["extra", "x" * 300, "", "id", "speaker"])] = nasty(rng)
        else:
            out[key] = mutate_value(rng, data[key], depth + 1)
        return out
    if isinstance(data, list) and data and depth < 6 and rng.random() < 0.7:
        out = list(data)
        i = rng.randrange(len(out))
        out[i] = mutate_value(rng, out[i], depth + 1)
        if rng.random() < 0.2:
            out.append(out[i])
        return out
    return nasty(rng)


def mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    kind = rng.randrange(7)
    if not raw or kind == 0:
        return raw[: rng.randrange(len(raw) + 1)]  # truncated
    data = bytearray(raw)
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 2:
        at = rng.randrange(len(data))
        data[at:at] = rng.choice([b"\x00", b"\xff\xfe", b"\r", b"{", b"[" * 5000, b'"', b"\n\n", b"null\n", b"NaN"])
    elif kind == 3:
        return raw.replace(b"\n", b"\r")
    elif kind == 4:
        return b"\xef\xbb\xbf" + raw
    elif kind == 5:
        return raw * 2
    else:
        return b""
    return bytes(data)


def dump(rng: random.Random, data: Any) -> str:
    """YAML or JSON text (both are YAML), with an occasional alias bomb, tag or duplicate key."""
    text = json.dumps(data, default=str) if rng.random() < 0.3 else yaml.safe_dump(data, allow_unicode=True)
    roll = rng.random()
    if roll < 0.05:
        text = f"big: &b \"{'x' * 100_000}\"\n" + "more: [" + ", ".join(["*b"] * 1000) + "]\n" + text
    elif roll < 0.08:
        text = text + "\n" + text  # every key twice
    elif roll < 0.1:
        text = "!!python/object/apply:os.system ['true']\n"
    elif roll < 0.12:
        text = "a: " + "[" * 10_000
    return text


def manifest_text(rng: random.Random, rows: list[dict[str, Any]], csv_format: bool) -> bytes:
    rows = [dict(r) for r in rows]
    roll = rng.random()
    if roll < 0.3:
        i = rng.randrange(len(rows))
        rows[i] = mutate_value(rng, rows[i])
    elif roll < 0.4:
        for i, row in enumerate(rows):
            row["accent"] = f"value{i}" * rng.choice([1, 10_000])  # long tag values
    elif roll < 0.45:
        many = {f"tag{j}": str(j % 3) for j in range(rng.choice([50, 300]))}  # many tags
        rows = [{**r, **many} for r in rows]
    elif roll < 0.5:
        rows.append({**rows[0], "offset": rng.choice([math.nan, -1, 1e300, "nan"])})
    if csv_format:
        rows = [r if isinstance(r, dict) else {"id": str(r)} for r in rows]
        frame = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, dict | list)} for r in rows])
        raw = frame.to_csv(index=False).encode("utf-8", "surrogatepass")
    else:
        raw = "".join(json.dumps(r, default=str) + "\n" for r in rows).encode("utf-8", "surrogatepass")
    return mutate_bytes(rng, raw) if rng.random() < 0.4 else raw


def slice_doc(rng: random.Random) -> dict[str, Any]:
    slices: list[dict[str, Any]] = [
        {"by": "accent"},
        {"by": ["accent", "device"]},
        {"name": "ab", "by": "accent", "groups": {"g": ["a", "b"], "h": ["a"]}},
        {"by": "device", "where": "accent == 'a' and not device in ['x']"},
        {"by": "accent", "reference": "a"},
    ]
    doc = {"version": 1, "slices": rng.sample(slices, rng.randint(1, len(slices)))}
    if rng.random() < 0.2:
        doc["slices"][0]["where"] = "not " * rng.choice([10, 200, 5000]) + "accent == 'a'"
    return mutate_value(rng, doc) if rng.random() < 0.7 else doc


# ------------------------------------------------------------------------------------------------- cases


def case_args(n: int, ws: Workspace, folder: Path) -> list[str]:
    """The command line of case ``n`` (its inputs written under ``folder``)."""
    rng = random.Random(n)
    family = rng.choices(
        ["manifest", "config", "slices", "card", "rundir", "baseline", "history", "options"],
        weights=[20, 16, 10, 6, 22, 8, 6, 12],
    )[0]
    data = folder / "data"
    shutil.copytree(ws.root / "data", data)
    if family in ("manifest", "card", "slices"):
        csv_format = family == "manifest" and rng.random() < 0.3
        manifest = data / ("manifest.csv" if csv_format else "manifest.jsonl")
        if family == "manifest":
            (data / "manifest.jsonl").unlink()
            manifest.write_bytes(manifest_text(rng, ws.manifest_rows, csv_format))
        if family == "card":
            card = {"tags": {"accent": {"values": ["a", "b"]}, "device": {"values": ["x", "y", "z"]}}}
            (data / "dataset.yaml").write_text(dump(rng, mutate_value(rng, card)), encoding="utf-8")
        extra: list[str] = []
        if family == "slices":
            (folder / "slices.yaml").write_text(dump(rng, slice_doc(rng)), encoding="utf-8")
            extra = ["--slices", str(folder / "slices.yaml")]
            command = rng.choice(["coverage", "score"])
            if command == "score":
                return ["score", str(copy_run(ws, folder)), *extra]
            return ["coverage", str(manifest), "--no-audio", *extra]
        command = rng.choice(["validate", "coverage", "run"])
        if command == "run":
            config = {**ws.config, "dataset": str(manifest), "output": str(folder / "runs"), "history": None}
            (folder / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            return ["run", str(folder / "run.yaml")]
        if command == "coverage":
            return ["coverage", str(manifest), *(["--md", str(folder / "c.md")] if rng.random() < 0.3 else [])]
        return ["validate", str(manifest)]
    if family == "config":
        config = {**ws.config, "output": str(folder / "runs"), "history": str(folder / "h.duckdb")}
        config = mutate_value(rng, config)
        (folder / "run.yaml").write_text(dump(rng, config), encoding="utf-8")
        return ["run", str(folder / "run.yaml")]
    if family == "rundir":
        run_dir = copy_run(ws, folder)
        corrupt_run(rng, run_dir)
        other = str(ws.run_dir)
        return rng.choice(
            [
                ["score", str(run_dir)],
                ["report", str(run_dir), "-o", str(folder / "r.html")],
                ["model", str(run_dir)],
                ["plan", str(run_dir), "--gap", "0.05"],
                ["discover", str(run_dir), "--min-speakers", "2"],
                ["gate", str(run_dir), "-b", other, "-o", str(folder / "g")],
                ["gate", other, "-b", str(run_dir), "-o", str(folder / "g")],
                ["compare", other, str(run_dir)],
                ["baseline", "set", str(run_dir), "-o", str(folder / "b.json")],
            ]
        )
    if family == "baseline":
        base = folder / "base"
        shutil.copytree(ws.baseline.parent, base)
        target = rng.choice([base / ws.baseline.name, base / ws.baseline.with_suffix(".utterances.parquet").name])
        corrupt_file(rng, target)
        base_json = str(base / ws.baseline.name)
        gate = ["gate", str(ws.run_dir), "-b", base_json, "-o", str(folder / "g")]
        return rng.choice([gate, ["compare", str(ws.run_dir), base_json]])
    if family == "history":
        db = folder / "h.duckdb"
        roll = rng.random()
        if roll < 0.5:
            shutil.copyfile(ws.history, db)
            db.write_bytes(mutate_bytes(rng, db.read_bytes()))
        elif roll < 0.7:
            import sqlite3

            with contextlib.closing(sqlite3.connect(db)) as con:
                con.execute("CREATE TABLE runs (x)")
        elif roll < 0.85:
            db.mkdir()
        else:
            db.write_bytes(rng.randbytes(rng.choice([0, 10, 5000])))
        return ["history", "--db", str(db), *(["--plot", str(folder / "p.png")] if rng.random() < 0.3 else [])]
    return option_case(rng, ws, folder)


def option_case(rng: random.Random, ws: Workspace, folder: Path) -> list[str]:
    values = ["nan", "inf", "-inf", "-1", "0", "1", "1e-300", "1e300", "0.9999999999999999", "x", "", "99999", "0.5"]
    run_dir = str(copy_run(ws, folder))  # a command that succeeds rewrites it
    v = rng.choice
    return rng.choice(
        [
            ["plan", run_dir, "--gap", v(values)],
            ["plan", run_dir, "--gap", "0.05", "--power", v(values)],
            ["plan", run_dir, "--gap", "0.05", "--alpha", v(values)],
            ["plan", run_dir, "--gap", "0.05", "--utts-per-speaker", v(values)],
            ["discover", run_dir, "--depth", v(values), "--out", str(folder / "f")],
            ["discover", run_dir, "--fdr", v(values), "--out", str(folder / "f")],
            ["discover", run_dir, "--seed", v(values), "--min-speakers", "2", "--out", str(folder / "f")],
            ["discover", run_dir, "--min-speakers", v(values), "--out", str(folder / "f")],
            ["discover", run_dir, "--tags", v(["accent,accent", ",", "nope", "accent,device"]), "--out", str(folder)],
            ["gate", run_dir, "-b", run_dir, "-o", str(folder / "g"), "--confidence", v(values)],
            ["gate", run_dir, "-b", run_dir, "-o", str(folder / "g"), "--wer-increase", v(values)],
            ["model", run_dir, "--factors", v(["accent,accent", "nope", ",", "accent,device", "device"])],
            ["coverage", ws.config["dataset"], "--min-speakers", v(values)],
            ["history", "--db", str(ws.history), "--last", v(values)],
            ["serve", "-b", str(ws.root / "run.yaml"), "--port", v(["99999", "-1", "0x", "70000"])],
            ["serve", "-b", str(ws.root / "run.yaml"), "--host", v(["no such host!", "256.1.1.1", "", "::g"])],
            ["score", run_dir, "--aggregate", v(["nope", "", "pooled "])],
            ["score", run_dir, "--normalizer", v(["nope", "whisper-english@99", str(folder / "none.yaml")])],
        ]
    )


def copy_run(ws: Workspace, folder: Path) -> Path:
    target = folder / "run"
    shutil.copytree(ws.run_dir, target, ignore=shutil.ignore_patterns("report.html"))
    return target


def corrupt_run(rng: random.Random, run_dir: Path) -> None:
    name = rng.choice(
        ["metrics.json", "utterances.parquet", "transcripts.parquet", "config.yaml", "provenance.json", "metrics.json"]
    )
    corrupt_file(rng, run_dir / name)


def corrupt_file(rng: random.Random, path: Path) -> None:
    roll = rng.random()
    if roll < 0.1:
        path.unlink()
    elif path.suffix == ".parquet" and roll < 0.75:
        frame = pd.read_parquet(path)
        column = rng.choice(list(frame.columns))
        kind = rng.randrange(6)
        if kind == 0:
            frame = frame.drop(columns=[column])
        elif kind == 1:
            frame[column] = frame[column].astype(str)
        elif kind == 2:
            frame[column] = rng.choice([math.nan, -1, 1e300, None, "", 0])
        elif kind == 3:
            frame = frame.iloc[:0]
        elif kind == 4:
            frame = pd.concat([frame, frame.iloc[:3]])
        else:
            frame = frame.sample(frac=0.5, random_state=rng.randrange(100))
        frame.to_parquet(path, index=False)
    elif path.suffix in (".json", ".yaml") and roll < 0.8:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        data = mutate_value(rng, data)
        text = json.dumps(data, default=str) if path.suffix == ".json" else yaml.safe_dump(data)
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(mutate_bytes(rng, path.read_bytes()))


# ------------------------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    case: int
    args: list[str]
    code: int
    kind: str  # ok, internal, traceback, crash, hang
    seconds: float
    message: str = ""


def run_case(n: int, ws: Workspace, announce: Callable[[list[str]], None] = lambda args: None) -> Outcome:
    """Case ``n`` in this process, through the CLI (the same wrapper the console script uses)."""
    from typer.testing import CliRunner

    from harness.cli import app

    folder = Path(tempfile.mkdtemp(prefix=f"case{n}-", dir=ws.root))
    start = time.perf_counter()
    try:
        args = case_args(n, ws, folder)
        announce(args)
        with contextlib.chdir(folder):
            result = CliRunner().invoke(app, args)
        output = (result.stdout or "") + (result.stderr or "")
        code = result.exit_code
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            kind, output = "traceback", f"{type(result.exception).__name__}: {result.exception}"
        elif code == 4 or "internal error" in output:
            kind = "internal"
        elif "Traceback (most recent call last)" in output:
            kind = "traceback"
        else:
            kind = "ok" if code in OK_CODES else "exit"
    except Exception as exc:  # the generator's own bug: counted apart, never a pass
        args, code, kind, output = [], -1, "generator", f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = [line for line in output.splitlines() if "error" in line] or output.splitlines()[-1:]
    return Outcome(n, args, code, kind, time.perf_counter() - start, (lines[0] if lines else "")[:300])


def worker(cases: list[int]) -> None:
    """Run ``cases`` and report each on stdout: ``start N`` then the outcome as JSON."""
    import logging

    logging.disable(logging.CRITICAL)  # the CLI's own warnings are not what is measured
    with tempfile.TemporaryDirectory(prefix="asrfair-fuzz-") as root:
        with contextlib.redirect_stderr(io.StringIO()):
            ws = Workspace.build(Path(root))
        print("ready", flush=True)
        for n in cases:
            print(f"start {n}", flush=True)
            outcome = run_case(n, ws, lambda args: print("args " + json.dumps(args), flush=True))
            print(json.dumps(outcome.__dict__), flush=True)


def supervise(cases: list[int], workers: int, timeout: float, on_outcome: Callable[[Outcome], None]) -> None:
    """Fan ``cases`` out to worker processes; a worker that dies or stalls has its case recorded and
    is replaced by one that carries on after it."""
    chunks = [cases[i::workers] for i in range(workers)]
    selector = selectors.DefaultSelector()
    try:
        _supervise(chunks, selector, timeout, on_outcome)
    finally:  # stopped early (Ctrl-C, SIGTERM) or done: no worker outlives the run
        for key in list(selector.get_map().values()):
            key.data["process"].kill()
            key.data["process"].wait()


def _supervise(
    chunks: list[list[int]], selector: selectors.BaseSelector, timeout: float, on_outcome: Callable[[Outcome], None]
) -> None:
    def spawn(chunk: list[int]) -> None:
        if not chunk:
            return
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", ",".join(map(str, chunk))],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
        )
        state = {"process": process, "chunk": chunk, "current": None, "since": time.monotonic(), "ready": False}
        selector.register(process.stdout, selectors.EVENT_READ, state)

    for chunk in chunks:
        spawn(chunk)
    while selector.get_map():
        for key, _ in selector.select(timeout=1.0):
            state = key.data
            line = key.fileobj.readline()
            if not line:  # the worker died: the case it was on crashed it
                selector.unregister(key.fileobj)
                code = state["process"].wait()
                if not state["ready"]:
                    raise SystemExit(f"a worker failed to build its workspace (exit {code}); run with --only 0")
                if state["current"] is not None:
                    n = state["current"]
                    elapsed = time.monotonic() - state["since"]
                    on_outcome(Outcome(n, state["args"], code, "crash", elapsed, f"exit {code}"))
                    spawn(state["chunk"][state["chunk"].index(n) + 1 :])
                continue
            state["since"] = time.monotonic()
            if line == "ready\n":
                state["ready"] = True
            elif line.startswith("start "):
                state["current"], state["args"] = int(line.split()[1]), []
            elif line.startswith("args "):
                state["args"] = json.loads(line[5:])
            else:
                on_outcome(Outcome(**json.loads(line)))
                state["current"] = None
        now = time.monotonic()
        for key in list(selector.get_map().values()):
            state = key.data
            limit = timeout if state["ready"] else 600  # building the workspace runs a stub run
            if now - state["since"] > limit:
                selector.unregister(key.fileobj)
                state["process"].kill()
                state["process"].wait()
                n = state["current"]
                if n is not None:
                    message = f"no answer in {timeout:g} s"
                    on_outcome(Outcome(n, state["args"], -9, "hang", now - state["since"], message))
                    spawn(state["chunk"][state["chunk"].index(n) + 1 :])


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0, help="number of the first case")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a case may take before it is a hang")
    parser.add_argument("--only", type=int, help="run this one case here and print its outcome")
    parser.add_argument("--out", type=Path, help="write the summary and every defect as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker([int(n) for n in args.worker.split(",") if n])
        return
    if args.only is not None:
        with tempfile.TemporaryDirectory() as root:
            announce = lambda argv: print(" ".join(argv), file=sys.stderr, flush=True)  # noqa: E731
            print(json.dumps(run_case(args.only, Workspace.build(Path(root)), announce).__dict__, indent=2))
        return
    kinds: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    defects: list[dict[str, Any]] = []
    slowest = 0.0
    start = time.monotonic()

    def record(outcome: Outcome) -> None:
        nonlocal slowest
        kinds[outcome.kind] += 1
        codes[outcome.code] += 1
        commands[" ".join(a for a in outcome.args[:2] if not a.startswith("/"))[:20] or "?"] += 1
        slowest = max(slowest, outcome.seconds)
        if outcome.kind != "ok":
            defects.append(outcome.__dict__)
            print(f"DEFECT case {outcome.case} {outcome.kind} exit {outcome.code}: {outcome.message}", flush=True)
        done = sum(kinds.values())
        if done % 500 == 0:
            print(f"{done} cases, {dict(kinds)}, {time.monotonic() - start:.0f} s", flush=True)

    signal.signal(signal.SIGTERM, _stop)
    stopped = False
    try:
        supervise(list(range(args.first, args.first + args.cases)), args.workers, args.timeout, record)
    except KeyboardInterrupt:  # the figures so far are still written
        stopped = True
    summary = {
        "stopped_early": stopped,
        "cases": sum(kinds.values()),
        "outcomes": dict(kinds),
        "exit_codes": {str(k): v for k, v in sorted(codes.items())},
        "commands": dict(commands.most_common()),
        "segfaults": kinds["crash"],
        "internal_errors": kinds["internal"] + kinds["traceback"] + kinds["exit"],
        "hangs": kinds["hang"],
        "slowest_case_s": round(slowest, 1),
        "wall_s": round(time.monotonic() - start),
        "defects": defects,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "defects"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    sys.exit(1 if defects else 0)


if __name__ == "__main__":
    main()
