"""Where a tor's control port is, as a user writes it: ``9051``, ``HOST:PORT`` or a socket path.

Tor offers its control protocol on a TCP port (``ControlPort``) or a Unix
socket (``ControlSocket``, e.g. Debian's ``/run/tor/control``); Tor
Browser's tor listens on 127.0.0.1:9151. Pure parsing of untrusted text.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from onion._errors import OnionLocalError

__all__ = ["ControlEndpoint", "InvalidControlEndpoint"]

MAX_ENDPOINT = 1024
_USAGE = (
    "give tor's control port as a port (9051), HOST:PORT (127.0.0.1:9151)"
    " or the path of its control socket (/run/tor/control)"
)


class InvalidControlEndpoint(OnionLocalError):
    """Text that names no control port or socket."""


@dataclass(frozen=True, kw_only=True)
class ControlEndpoint:
    """A TCP control port (``host``, ``port``) or a control socket (``path``)."""

    host: str = "127.0.0.1"
    port: int = 0
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> ControlEndpoint:
        text = text.strip()
        if not text or len(text) > MAX_ENDPOINT or any(not c.isprintable() for c in text):
            raise InvalidControlEndpoint(_USAGE)
        if text.startswith("unix:"):
            text = text[5:]
            if not text.startswith("/"):
                raise InvalidControlEndpoint(f"unix: needs an absolute path; {_USAGE}")
        if text.startswith(("/", "./", "~/")):
            return cls(path=os.path.expanduser(text))
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "127.0.0.1", text
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if host != "localhost":
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise InvalidControlEndpoint(f"{host!r} is not an IP address; {_USAGE}") from None
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise InvalidControlEndpoint(f"{port!r} is not a port; {_USAGE}")
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
