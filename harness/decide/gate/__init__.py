"""Regression gate: is a candidate run worse, or less fair, than a baseline — beyond noise?

Both runs are compared **paired** on the utterances they share (by id, and by simulated
condition when the runs have them) and scored in both. Each check — overall WER, each ranked
slice's WER, each dimension's gap and ratio, the failure rate — fails only when its change
exceeds every threshold set for it **and** a paired speaker-level test says it is real:

* the interval shown is the speaker-clustered bootstrap of :mod:`harness.stats.degradation` (the two
  runs as its two "conditions", the same speakers drawn for both in each replicate);
* the decision is a **sign-flip test**: under "same model", swapping which run a speaker's
  transcripts came from changes nothing, so flipping speakers at random gives the null
  distribution of every check at once. One-sided p-values are Holm-corrected over all checks, so
  noise alone fails the gate with probability at most ``1 - confidence``. (Bootstrap intervals
  alone, even Bonferroni-adjusted, failed 20 % of no-change pairs with 8 speakers per slice: the
  percentile bootstrap is too narrow with few clusters. The sign-flip test is exact.)

Failure rates are counted, not estimated, and are checked against thresholds only.

The package follows the gate's jobs: :mod:`.sides` loads and verifies the two runs, :mod:`.compare`
pairs them, :mod:`.checks` types what is checked, :mod:`.signflip` computes each check's
statistics, :mod:`.decision` decides; :mod:`harness.report.gate` writes gate.md, gate.json and JUnit.
"""

from harness.decide.gate.checks import Check, CheckId, CheckKind, Status, Untestable
from harness.decide.gate.compare import compare_sides
from harness.decide.gate.decision import GATE_SCHEMA, GateResult, run_gate
from harness.decide.gate.sides import BASELINE_SCHEMA, RunSide, load_side, save_baseline

__all__ = [
    "BASELINE_SCHEMA",
    "GATE_SCHEMA",
    "Check",
    "CheckId",
    "CheckKind",
    "GateResult",
    "RunSide",
    "Status",
    "Untestable",
    "compare_sides",
    "load_side",
    "run_gate",
    "save_baseline",
]
