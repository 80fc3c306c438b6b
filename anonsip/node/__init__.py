"""The anonsip node: owns tor, the DHT, registrations, sessions, the message
store and the control server in one nursery."""

from anonsip.node._session import Session, SessionBroken, SessionClosed

__all__ = ["Session", "SessionBroken", "SessionClosed"]
