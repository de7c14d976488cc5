"""How fast, and in how much memory, does ``asrfair import commonvoice`` read a large release?

  (a) baseline: the obvious pandas way: ``pd.read_csv`` of the whole TSV (quoting off), an
      ``os.path.isfile`` per clip, then ``to_json(lines=True)``: the whole table in memory
  (b) ``harness.data.importers.writer.import_corpus`` with the Common Voice importer: streaming, every
      row checked, mapped and counted, rejects and the dataset card written

on a generated Common Voice-shaped locale folder: ``--rows`` TSV rows (500,000 by default) over
as many clip files (hard links to a few MP3s, so every row costs a real ``stat``), 20,000 speakers
and 60 free-text accents. Each method runs in its own process, so its peak resident memory is
its own. Also runs (b) on a tenth of the rows: streaming means the same peak. Prints b/a for
time and memory. Usage::

    python benchmarks/bench_import.py [--rows 500000]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

COLUMNS = "client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents variant locale"
HEADER = "\t".join([*COLUMNS.split(" "), "segment"])
LINKS_PER_FILE = 60_000
AGES = ("teens", "twenties", "thirties", "fourties", "fifties", "")


def make_release(folder: Path, rows: int) -> Path:
    clips = folder / "clips"
    clips.mkdir(parents=True)
    t = np.arange(4800) / 16000
    first = clips / "common_voice_en_0.mp3"
    sf.write(first, (0.1 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 16000, format="MP3")
    for i in range(1, rows):
        target = clips / f"common_voice_en_{i}.mp3"
        if i % LINKS_PER_FILE:
            os.link(first, target)
        else:  # ext4 allows 65,000 links to one file: start a fresh copy
            shutil.copyfile(first, target)
            first = target
    with (folder / "test.tsv").open("w", encoding="utf-8") as tsv:
        tsv.write(HEADER + "\n")
        for i in range(rows):
            speaker = f"{i % 20_000:0128x}"
            accent = f"Accent number {i % 60} English" if i % 7 else ""
            tsv.write(
                f"{speaker}\tcommon_voice_en_{i}.mp3\t{i:064x}\tThe birch canoe slid on the smooth planks {i}."
                f"\t\t2\t0\t{AGES[i % 6]}\tfemale_feminine\t{accent}\t\ten\t\n"
            )
    return folder


BASELINE = """
import json, os, sys, csv
import pandas as pd
source, out = sys.argv[1], sys.argv[2]
table = pd.read_csv(f"{source}/test.tsv", sep="\\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
table["audio"] = source + "/clips/" + table["path"]
table = table[table["audio"].map(os.path.isfile) & (table["sentence"].str.strip() != "")]
manifest = pd.DataFrame({"id": table["path"].str.removesuffix(".mp3"), "audio": table["audio"],
    "text": table["sentence"], "speaker": table["client_id"], "accent": table["accents"]})
manifest.to_json(out, orient="records", lines=True, force_ascii=False)
"""

STREAMING = """
import sys
from pathlib import Path
from harness.data.importers import ImporterRegistry
from harness.data.importers.writer import import_corpus
source, out = Path(sys.argv[1]), Path(sys.argv[2])
import_corpus(ImporterRegistry.default().create("commonvoice", source, {}, None), out)
"""


def timed(code: str, *args: str) -> tuple[float, float]:
    """Seconds and peak resident MB of ``code`` run in a fresh interpreter."""
    script = f"import resource, time\nstart = time.perf_counter()\n{code}\n" + (
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    seconds, kib = result.stdout.split()
    return float(seconds), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        big = make_release(root / "big" / "en", args.rows)
        small = make_release(root / "small" / "en", args.rows // 10)
        print(f"generated {args.rows} + {args.rows // 10} rows in {time.perf_counter() - start:.0f} s")
        base_s, base_mb = timed(BASELINE, str(big), str(root / "baseline.jsonl"))
        ours_s, ours_mb = timed(STREAMING, str(big), str(root / "out" / "manifest.jsonl"))
        tenth_s, tenth_mb = timed(STREAMING, str(small), str(root / "out10" / "manifest.jsonl"))
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {args.rows} rows")
    print(f"(a) pandas read_csv + to_json: {base_s:6.1f} s  {args.rows / base_s:8.0f} rows/s  peak {base_mb:6.0f} MB")
    print(f"(b) asrfair import:           {ours_s:6.1f} s  {args.rows / ours_s:8.0f} rows/s  peak {ours_mb:6.0f} MB")
    print(f"(b) on {args.rows // 10} rows:          {tenth_s:6.1f} s  peak {tenth_mb:6.0f} MB")
    print(f"time b/a {ours_s / base_s:.2f}; memory b/a {ours_mb / base_mb:.2f}")
    print(f"peak memory at 10x the rows: {ours_mb / tenth_mb:.2f}x (streaming: ~1.00)")


if __name__ == "__main__":
    main()
