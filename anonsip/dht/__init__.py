"""A Kademlia DHT hardened as S/Kademlia, whose nodes are Tor onion services.

Sans-IO cores (``RoutingTable``, ``Lookup``, ``RecordStore``, ``DhtProtocol``,
the codec, record placement) are shared by the trio adapters ``DhtNode``
(the long-term node) and ``DhtClient`` (the user's own operations, made
anonymously) and by the simulator in ``anonsip.dht.sim``. See the DHT
sections of threat-model.md for what each defends.
"""

from anonsip.dht._bootstrap_list import (
    BOOTSTRAP_FILE,
    BootstrapList,
    decode_bootstrap_list,
    encode_bootstrap_list,
)
from anonsip.dht._client import AnonymousDialer, DhtClient
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
    puzzle_seed,
    satisfies_puzzle,
    verify_identity_proof,
)
from anonsip.dht._kinds import KindVerdict, check_kind, max_payload_of, registration_record
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult
from anonsip.dht._messages import (
    Anonymous,
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
from anonsip.dht._node import DEFAULT_DIFFICULTY, DhtConfig, DhtNode, DhtStatistics, Dialer
from anonsip.dht._onion_transport import (
    DEFAULT_DHT_PORT,
    OnionDht,
    anonymous_dialer,
    onion_dialer,
    start_onion_dht,
)
from anonsip.dht._onionaddr import onion_address_from_public_key, public_key_from_onion_address
from anonsip.dht._placement import (
    DEFAULT_REPLICAS,
    Position,
    SharedRandom,
    SharedRandomSource,
    clock_shared_random,
    disaster_value,
    parse_tor_shared_random,
    positions,
    shared_random_at,
)
from anonsip.dht._protocol import DhtProtocol, Handled
from anonsip.dht._record import MAX_PAYLOAD, DhtRecord, RecordKind, record_key, sign_record
from anonsip.dht._routing import RoutingTable
from anonsip.dht._rpc import RpcError, RpcTimeout
from anonsip.dht._shared_random import TorSharedRandom
from anonsip.dht._store import RecordStore, StoreOutcome, TokenBucket

__all__ = [
    "BOOTSTRAP_FILE",
    "DEFAULT_DHT_PORT",
    "DEFAULT_DIFFICULTY",
    "DEFAULT_REPLICAS",
    "ID_BITS",
    "MAX_CONTACTS",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "Anonymous",
    "AnonymousDialer",
    "BootstrapList",
    "Challenge",
    "Contact",
    "DhtClient",
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
    "KindVerdict",
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
    "Position",
    "Proof",
    "RecordKind",
    "RecordStore",
    "Reply",
    "Request",
    "RoutingTable",
    "RpcError",
    "RpcTimeout",
    "SharedRandom",
    "SharedRandomSource",
    "Store",
    "StoreOutcome",
    "StoreResult",
    "TokenBucket",
    "TorSharedRandom",
    "Value",
    "anonymous_dialer",
    "check_kind",
    "clock_shared_random",
    "decode_bootstrap_list",
    "decode_message",
    "disaster_value",
    "encode_bootstrap_list",
    "encode_frame",
    "encode_message",
    "max_payload_of",
    "onion_address_from_public_key",
    "onion_dialer",
    "parse_tor_shared_random",
    "positions",
    "public_key_from_onion_address",
    "puzzle_bits",
    "puzzle_seed",
    "record_key",
    "registration_record",
    "satisfies_puzzle",
    "shared_random_at",
    "sign_record",
    "start_onion_dht",
    "verify_identity_proof",
]
