"""docs/control-api.md says what the schema and the node say, no more and no less.

The page's operation table, event table, enumerations and view tables are
read and compared with ``anonsip.control`` and with the operations a node
built by ``build_node`` actually serves.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import secrets
import typing
from pathlib import Path

import pytest

from anonsip.control import EVENTS, OPERATIONS, View, _views
from anonsip.identity import Identity
from anonsip.node import Home, NodeConfig, Unlocked, build_node

NO_ARGS = "\u2013"  # the page's en dash for "no arguments"
DOC = Path(__file__).resolve().parents[3] / "docs" / "control-api.md"


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:] if rows else rows  # without the header


def _code(cell: str) -> str:
    return cell.strip().strip("`")


def _documented_ops() -> dict[str, str]:
    return {_code(row[0]): row[1] for row in _rows(_section("Operations"))}


def test_every_operation_is_documented_and_every_documented_one_exists() -> None:
    assert set(_documented_ops()) == set(OPERATIONS)


def test_documented_arguments_and_results_match_the_schema() -> None:
    documented = _documented_ops()
    for row in _rows(_section("Operations")):
        name, args, result = _code(row[0]), row[1], row[2]
        operation = OPERATIONS[name]
        fields = dataclasses.fields(operation.args)
        expected = ", ".join(
            f.name
            + (
                ""
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                else "?"
            )
            for f in fields
        )
        assert _code(args) == (expected or NO_ARGS), name
        assert result == operation.result.describe(), name
    assert documented  # the table was found


def test_the_node_serves_exactly_the_schemas_operations(tmp_path: Path) -> None:
    identity = Identity.generate("doc", rng=secrets.token_bytes)
    keys = Unlocked(
        identity=identity,
        onion_seed=secrets.token_bytes(32),
        dht_seed=secrets.token_bytes(32),
        store_key=secrets.token_bytes(32),
    )
    home = Home(tmp_path / "home")
    home.path.mkdir(mode=0o700)
    node = build_node(home, keys, NodeConfig(echo_bot=True))
    try:
        served = set(node.services.ops) | {"subscribe"}  # the control server answers subscribe
    finally:
        node.store.close()
    assert served == set(OPERATIONS)


def test_every_event_is_documented_with_its_view() -> None:
    rows = {_code(row[0]): row[1] for row in _rows(_section("Events"))}
    assert rows == {name: view.__name__ for name, view in EVENTS.items()}


def _views_in_code() -> dict[str, type[View]]:
    return {
        name: obj
        for name, obj in vars(_views).items()
        if isinstance(obj, type) and issubclass(obj, View) and obj is not View
    }


def test_every_view_is_documented_field_by_field() -> None:
    text = _section("Views")
    documented: dict[str, list[str]] = {}
    for block in re.split(r"\n### ", text)[1:]:
        title, _, table = block.partition("\n")
        documented[title.strip()] = [_code(row[0]) for row in _rows(table)]
    views = _views_in_code()
    assert set(documented) == set(views)
    for name, view in views.items():
        assert documented[name] == [f.name for f in dataclasses.fields(view)], name


def test_every_enumeration_is_documented_value_by_value() -> None:
    rows = {
        row[0]: [_code(v) for v in row[1].split(",")] for row in _rows(_section("Enumerations"))
    }
    enums = {
        name: [m.value for m in obj]
        for name, obj in vars(_views).items()
        if isinstance(obj, type)
        and issubclass(obj, enum.Enum)
        and obj.__module__ == _views.__name__
    }
    assert rows == enums


@pytest.mark.parametrize("view", sorted(_views_in_code().values(), key=lambda v: v.__name__))
def test_every_view_round_trips_through_its_encoding(view: type[View]) -> None:
    hints = typing.get_type_hints(view)
    required = {
        f.name: ("x" if hints[f.name] is str else 1)
        for f in dataclasses.fields(view)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    instance = view(**required)
    assert view.decode(instance.encode()) == instance
