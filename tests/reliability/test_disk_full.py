"""A full or read-only disk: a one-line error naming the file, exit 2, nothing half-written taken as
done, and a rerun with space resumes from what was cached.

A per-process file-size limit (RLIMIT_FSIZE: writes past it fail with EFBIG) stands in for a full
disk on any machine; where the test may mount a small tmpfs it also fills a real one (ENOSPC) and
remounts it read-only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from counting import BATCH, counting_config, finish, run_dirs, start  # noqa: F401 - fixture


def run_capped(config: Path, output: Path, started_log: Path, max_file_bytes: int) -> subprocess.CompletedProcess:
    proc = start(config, output, started_log, max_file_bytes=max_file_bytes)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_one_line_write_error(result: subprocess.CompletedProcess, output: Path) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert str(output) in error and ("cannot write" in error or "cannot create" in error or "cannot open" in error)
    assert "free disk space" in error or "elsewhere" in error or "choose another" in error


# Files a warm run writes before each of the two it is made to fail on (the cache's shared-memory
# index, 32 KiB, included); the cap sits just above the largest of them.
WRITTEN_BEFORE = {
    "report.html": ("config.yaml", "transcripts.parquet", "utterances.parquet", "provenance.json", "report.md"),
    "metrics.json": ("config.yaml", "transcripts.parquet", "utterances.parquet", "provenance.json", "report.md",
                     "report.html"),
}  # fmt: skip
SQLITE_SHM = 32 * 1024


def cap_failing_on(run_dir: Path, target: str) -> int:
    """A file-size cap every file written before ``target`` fits under, and ``target`` does not."""
    cap = max(SQLITE_SHM, *((run_dir / name).stat().st_size for name in WRITTEN_BEFORE[target])) + 1024
    assert cap < (run_dir / target).stat().st_size, f"{target} is too small to fail on its own"
    return cap


@pytest.mark.parametrize(
    ("warm", "fails_on", "max_kib"),
    [
        (False, "transcripts.sqlite", 16),  # opening the cache
        (False, "transcripts.sqlite", 48),  # mid-transcription: earlier batches stay cached
        (True, "report.html", None),  # the cache holds everything; the reports do not fit
        (True, "metrics.json", None),  # everything but metrics.json, the file that marks a run done
    ],
)
def test_a_full_disk_fails_cleanly_at_each_stage_and_a_rerun_resumes(
    tmp_path,
    counting_config,
    warm,
    fails_on,
    max_kib,
):
    output, started_log = tmp_path / "runs", tmp_path / "started.log"
    cap = (max_kib or 0) * 1024
    if warm:
        finish(start(counting_config, output, started_log))
        [done] = run_dirs(output)
        cap = cap_failing_on(done, fails_on)
    before = run_dirs(output)
    full = run_capped(counting_config, output, started_log, cap)
    assert_one_line_write_error(full, output)
    assert f"{fails_on}: cannot" in full.stderr
    assert not any((d / "metrics.json").exists() for d in run_dirs(output) - before)  # never presented as done
    transcribed_before = len(started_log.read_text().split()) if started_log.exists() else 0

    metrics = finish(start(counting_config, output, started_log))
    started = Counter(started_log.read_text().split())
    assert len(started) == metrics["overall"]["utterances"] and metrics["failures"]["count"] == 0
    if warm:  # the cache held: nothing is transcribed again
        assert sum(started.values()) == transcribed_before
    assert sum(started.values()) - len(started) <= BATCH  # at most the batch whose cache write failed


@contextlib.contextmanager
def small_tmpfs(folder: Path, kib: int):
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_real_full_disk_and_a_read_only_one(tmp_path, counting_config):
    started_log = tmp_path / "started.log"
    with small_tmpfs(tmp_path / "disk", 160) as disk:
        full = run_capped(counting_config, disk / "runs", started_log, 1 << 40)
        assert_one_line_write_error(full, disk / "runs")
        assert "No space left on device" in full.stderr or "disk is full" in full.stderr
        assert not any((d / "metrics.json").exists() for d in run_dirs(disk / "runs"))
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        read_only = run_capped(counting_config, disk / "runs", started_log, 1 << 40)
        assert_one_line_write_error(read_only, disk / "runs")
        assert "Read-only file system" in read_only.stderr
