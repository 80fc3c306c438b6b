"""Where a starting node finds the DHT: the order of its sources; contacts as people write them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from anonsip import LocalError
from anonsip.dht import BootstrapList, Contact
from anonsip.identity import Identity
from anonsip.invite import DhtSeed, Invite
from anonsip.node._seeds import DEFAULT_DHT_PORT, parse_seed, read_seed_file, seed_sources
from anonsip.store import MessageStore


def _contact(seed: int, port: int = 7044) -> Contact:
    key = Identity.generate("n", rng=random.Random(seed).randbytes).public_key
    return Contact.from_public_key(key, port)


def test_a_contact_is_an_onion_with_or_without_port_or_an_invite() -> None:
    node = _contact(1, 9000)
    assert parse_seed(f"{node.onion_address}.onion:9000") == [node]
    assert parse_seed(node.onion_address) == [
        Contact.from_public_key(node.public_key, DEFAULT_DHT_PORT)
    ]
    invite = Invite(
        address=Identity.generate("a", rng=random.Random(5).randbytes).address,
        seeds=(
            DhtSeed(key=node.public_key, port=9000),
            DhtSeed(key=_contact(2).public_key, port=1),
        ),
        expires=2_000_000_000,
    )
    assert parse_seed(invite.text) == [node, Contact.from_public_key(_contact(2).public_key, 1)]
    for bad in (
        "nonsense",
        "x" * 56 + ".onion",
        f"{node.onion_address}:notaport",
        invite.text[:-3],
    ):
        with pytest.raises(LocalError):
            parse_seed(bad)


def test_a_seed_file_is_a_bootstrap_list_or_one_contact_a_line(tmp_path: Path) -> None:
    one, two = _contact(1), _contact(2, 7045)
    text = tmp_path / "seeds.txt"
    text.write_text(f"# my team's nodes\n{one.onion_address}\n\n{two.onion_address}.onion:7045\n")
    assert read_seed_file(text) == [one, two]
    listed = tmp_path / "net"
    listed.mkdir()
    BootstrapList(listed).add_self(one)
    assert read_seed_file(listed) == [one]  # a directory: its dht-bootstrap.json
    (tmp_path / "huge.txt").write_text("x" * 70_000)
    with pytest.raises(LocalError, match="larger"):
        read_seed_file(tmp_path / "huge.txt")
    with pytest.raises(LocalError, match="cannot read"):
        read_seed_file(tmp_path / "missing.txt")


def test_sources_come_in_the_order_a_starting_node_tries_them(tmp_path: Path) -> None:
    store = MessageStore.open(tmp_path / "s.sqlite", bytes(32))
    saved, invited, given, network = _contact(1), _contact(2), _contact(3), _contact(4)
    store.add_dht_seeds("invite", [(invited.public_key, invited.port)], now=1.0)
    store.add_dht_seeds("saved", [(saved.public_key, saved.port)], now=2.0)
    configured = tmp_path / "given.txt"
    configured.write_text(given.onion_address + "\n")
    net = tmp_path / "net"
    net.mkdir()
    BootstrapList(net).add_self(network)
    sources = seed_sources(store, [configured], net)
    assert [(s.name, list(s.contacts)) for s in sources] == [
        ("saved", [saved]),
        ("invite", [invited]),
        ("configured", [given]),
        ("network", [network]),
    ]
    assert [s.name for s in seed_sources(store, [], None)] == [
        "saved",
        "invite",
        "configured",
        "network",
    ]
    store.close()
