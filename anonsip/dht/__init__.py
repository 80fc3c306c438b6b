"""A Kademlia DHT hardened as S/Kademlia, whose nodes are Tor onion services.

Sans-IO cores (``RoutingTable``, ``Lookup``, ``RecordStore``, ``DhtProtocol``,
the codec) are shared by the trio adapter ``DhtNode`` and the simulator in
``anonsip.dht.sim``. See docs/threat-model/dht.md for what each defends.
"""

from anonsip.dht._bootstrap_list import (
    BOOTSTRAP_FILE,
    BootstrapList,
    decode_bootstrap_list,
    encode_bootstrap_list,
)
from anonsip.dht._codec import (
    MAX_CONTACTS,
    MAX_FRAME,
    FrameDecoder,
    decode_message,
    encode_frame,
    encode_message,
)
from anonsip.dht._identity import (
    ID_BITS,
    Contact,
    NodeId,
    NodeIdentity,
    puzzle_bits,
    satisfies_puzzle,
    verify_identity_proof,
)
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult
from anonsip.dht._messages import (
    Challenge,
    Envelope,
    Error,
    FindNode,
    FindValue,
    Message,
    Nodes,
    Ping,
    Pong,
    Proof,
    Reply,
    Request,
    Store,
    StoreResult,
    Value,
)
from anonsip.dht._node import DhtConfig, DhtNode, DhtStatistics, Dialer
from anonsip.dht._onion_transport import (
    DEFAULT_DHT_PORT,
    OnionDht,
    onion_dialer,
    start_onion_dht,
)
from anonsip.dht._onionaddr import onion_address_from_public_key, public_key_from_onion_address
from anonsip.dht._protocol import DhtProtocol, Handled
from anonsip.dht._record import MAX_PAYLOAD, DhtRecord, record_key, sign_record
from anonsip.dht._routing import RoutingTable
from anonsip.dht._rpc import RpcError
from anonsip.dht._store import RecordStore, StoreOutcome, TokenBucket

__all__ = [
    "BOOTSTRAP_FILE",
    "DEFAULT_DHT_PORT",
    "ID_BITS",
    "MAX_CONTACTS",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "BootstrapList",
    "Challenge",
    "Contact",
    "DhtConfig",
    "DhtNode",
    "DhtProtocol",
    "DhtRecord",
    "DhtStatistics",
    "Dialer",
    "Envelope",
    "Error",
    "FindNode",
    "FindValue",
    "FrameDecoder",
    "Handled",
    "Lookup",
    "LookupKind",
    "LookupResult",
    "Message",
    "NodeId",
    "NodeIdentity",
    "Nodes",
    "OnionDht",
    "Ping",
    "Pong",
    "Proof",
    "RecordStore",
    "Reply",
    "Request",
    "RoutingTable",
    "RpcError",
    "Store",
    "StoreOutcome",
    "StoreResult",
    "TokenBucket",
    "Value",
    "decode_bootstrap_list",
    "decode_message",
    "encode_bootstrap_list",
    "encode_frame",
    "encode_message",
    "onion_address_from_public_key",
    "onion_dialer",
    "public_key_from_onion_address",
    "puzzle_bits",
    "record_key",
    "satisfies_puzzle",
    "sign_record",
    "start_onion_dht",
    "verify_identity_proof",
]
