"""asrfair: is word error rate equal across accents, dialects, devices and noise conditions?

Library entry points (the CLI is a thin layer over these)::

    from harness import load_config, load_manifest, prepare, run, rescore
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("asr-fairness-harness")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

from harness.config import RunConfig, load_config
from harness.manifest import Manifest, Utterance, load_manifest, read_manifest
from harness.pipeline import prepare, rescore, run

__all__ = [
    "Manifest",
    "RunConfig",
    "Utterance",
    "__version__",
    "load_config",
    "load_manifest",
    "prepare",
    "read_manifest",
    "rescore",
    "run",
]
