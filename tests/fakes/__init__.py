"""Loopback stand-ins for each cloud API's wire format (paths, auth, bodies, errors), one module each."""
