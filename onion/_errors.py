"""The root of every exception the onion package raises on purpose."""


class OnionError(Exception):
    """Root of all onion errors; ``str()`` is a message a user can act on."""
