"""onion: run and drive the tor daemon with trio.

Knows Tor (process, control protocol, onion services, SOCKS streams, a
private network) and nothing of SIP.
"""

from onion._errors import OnionError

__all__ = ["OnionError"]
