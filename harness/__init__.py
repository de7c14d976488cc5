"""asrfair: is word error rate equal across accents, dialects, devices and noise conditions?

Library entry points (the CLI is a thin layer over these)::

    from harness import load_config, load_manifest, prepare, run, rescore

and for a notebook, a pandas DataFrame of references, hypotheses and tags scored by slice
(docs/api.md)::

    from harness import score_frame
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("asr-fairness-harness")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

# Resolved on first use (PEP 562): every CLI command imports this package, and most need neither
# the run pipeline nor the audio-conditions stack (scipy.signal alone costs about a second).
_EXPORTS = {
    "InputError": "harness.errors",
    "SliceReport": "harness.api",
    "score_frame": "harness.api",
    "RunConfig": "harness.config",
    "load_config": "harness.config",
    "Manifest": "harness.data.manifest",
    "Utterance": "harness.data.manifest",
    "load_manifest": "harness.data.manifest",
    "read_manifest": "harness.data.manifest",
    "prepare": "harness.pipeline",
    "rescore": "harness.pipeline",
    "run": "harness.pipeline",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
