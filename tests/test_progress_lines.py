"""Without a terminal, a run logs its progress as lines with ETA and running WER (issue 25)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cli import asrfair
from conftest import write_config

from harness.cli.progress import ProgressLines
from harness.scoring.normalisers import get_normalizer

LINE = re.compile(
    r"^transcribing: (\d+)/(\d+) \((\d+)%\), (\d+) failed, WER ([\d.]+%|-), elapsed \S+, ETA (\S+)$", re.MULTILINE
)


@dataclass
class Utt:
    text: str


@dataclass
class Said:
    text: str
    status: str = "ok"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def batches(n: int, wrong_every: int = 4) -> list[tuple[list[Utt], list[Said]]]:
    """``n`` one-utterance batches of four words; every ``wrong_every``-th has one word wrong."""
    out = []
    for i in range(n):
        hyp = "one two three five" if i % wrong_every == 0 else "one two three four"
        out.append(([Utt("one two three four")], [Said(hyp)]))
    return out


def test_a_line_every_ten_percent_with_wer_and_eta():
    lines: list[str] = []
    clock = FakeClock()
    progress = ProgressLines(40, get_normalizer("basic"), lines.append, clock=clock)
    for batch in batches(40):
        clock.now += 1.0  # one second per utterance
        progress.update(*batch)
    assert len(lines) == 10  # 10 %, 20 %, ..., 100 %
    parsed = [LINE.match(line).groups() for line in lines]
    assert [int(p[2]) for p in parsed] == list(range(10, 101, 10))
    assert all(p[4] == "6.2%" for p in parsed)  # 1 word in 16 wrong, on each line's sample and overall
    assert parsed[0][5] == "36s"  # 3 utterances in 3 s since the first batch; 36 left
    assert parsed[1][5] == "32s"
    assert parsed[-1][5] == "0s"


def test_a_line_after_thirty_seconds_without_a_step():
    lines: list[str] = []
    clock = FakeClock()
    progress = ProgressLines(1000, get_normalizer("basic"), lines.append, clock=clock)
    for batch in batches(5):
        clock.now += 31.0  # slow: 5 utterances of 1,000 in 155 s
        progress.update(*batch)
    assert len(lines) == 5
    assert LINE.match(lines[-1]).groups()[:3] == ("5", "1000", "0")
    assert LINE.match(lines[-1]).group(6) == "8h34m"  # 995 left at 31 s each


def test_the_cache_hits_do_not_skew_the_eta():
    lines: list[str] = []
    clock = FakeClock()
    progress = ProgressLines(100, get_normalizer("basic"), lines.append, every_pct=50, clock=clock)
    cached = batches(50)
    progress.update([u for b in cached for u in b[0]], [t for b in cached for t in b[1]])  # at once, at t=0
    for batch in batches(10):
        clock.now += 2.0
        progress.update(*batch)
    clock.now = 1000.0  # 30 s later than the last line: a line
    progress.update(*batches(1)[0])
    assert LINE.match(lines[-1]).group(6) != "unknown"
    # 11 transcribed in 1000 s since the cache's batch: 39 left
    assert LINE.match(lines[-1]).group(6) == f"{round(39 * 1000 / 11) // 60}m{round(39 * 1000 / 11) % 60:02d}s"


def test_failures_are_counted_and_the_sample_is_bounded():
    lines: list[str] = []
    calls: list[str] = []

    basic = get_normalizer("basic")

    def normalise(text: str) -> str:  # the real normaliser, counting the texts normalised for the log
        calls.append(text)
        return basic(text)

    progress = ProgressLines(1000, normalise, lines.append, sample=50)
    utts = [Utt("a b") for _ in range(1000)]
    said = [Said("a b") if i % 10 else Said("", status="failed") for i in range(1000)]
    progress.update(utts, said)
    assert LINE.match(lines[-1]).groups()[:4] == ("1000", "1000", "100", "100")
    assert len(calls) == 100  # 50 pairs sampled of 900


def test_a_run_without_a_terminal_logs_progress_lines(tmp_path, make_manifest):
    records = [
        {"id": f"{accent}-{s}-{n}", "text": "alpha bravo charlie delta", "speaker": f"{accent}{s}", "accent": accent}
        for accent in ("scottish", "general")
        for s in range(3)
        for n in range(200)
    ]
    backend = {"name": "stub", "error_rates": {"accent": {"scottish": 0.25}}}  # batches of 256
    config = write_config(tmp_path / "run.yaml", make_manifest(records), backend)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    done = asrfair("run", str(config), env=env)  # stderr is a pipe: no terminal
    assert done.returncode == 0, done.stderr
    found = LINE.findall(done.stderr)
    assert len(found) == 5, done.stderr  # 5 batches, each past a 10 % step
    assert found[-1][:4] == ("1200", "1200", "100", "0") and found[-1][5] == "0s"
    assert all(wer.endswith("%") for *_, wer, _eta in found)
    assert found[0][5] == "unknown"  # one batch seen: no speed yet (later ones depend on the clock)
    assert all(re.fullmatch(r"unknown|(\d+h)?(\d+m)?\d+s|\d+h\d+m", eta) for *_, eta in found)
