"""ASR backends behind one interface; see :mod:`harness.backends.base`."""

from harness.backends.base import AudioRequest, Backend, BackendOptions, Capabilities, Registry, Transcript

__all__ = ["AudioRequest", "Backend", "BackendOptions", "Capabilities", "Registry", "Transcript"]
