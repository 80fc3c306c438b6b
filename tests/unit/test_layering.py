"""The folder tree is the architecture: check the import directions.

onion/ knows nothing of anonsip or tui; anonsip/ knows nothing of tui or
prompt_toolkit; tui/ reaches a node only through anonsip's control client;
a protocol core's package imports no trio.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "onion": ("anonsip", "tui", "prompt_toolkit"),
    "anonsip": ("tui", "prompt_toolkit"),
}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_directions(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_tui_uses_only_the_control_client() -> None:
    bad = []
    for path in sorted((ROOT / "tui").rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")
            if top[0] == "anonsip" and name not in ("anonsip", "anonsip.control"):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


# Protocol cores: importing the package must not import trio (nor onion's trio
# adapters, nor the node). onion's pure part (the onion-address codec, parsers,
# errors) is allowed: ``import onion`` loads its trio names lazily. Each
# package is checked in a fresh interpreter.
SANS_IO = (
    "onion",
    "anonsip.registration",
    "anonsip.identity",
    "anonsip.sip",
    "anonsip.call",
    "anonsip.presence",
    "anonsip.admission",
    "anonsip.media",
    "anonsip.store",
    "anonsip.mailbox",
    "anonsip.invite",
)


FORBIDDEN_IN_CORES = (
    "trio",
    "anonsip.node",
    "onion._control",
    "onion._process",
    "onion._service",
    "onion._streams",
    "onion._tor",
    "onion.testnet",
)


@pytest.mark.parametrize("package", SANS_IO)
def test_protocol_cores_are_sans_io(package: str) -> None:
    probe = (
        f"import sys, {package}; "
        f"bad = sorted(m for m in {FORBIDDEN_IN_CORES!r} if m in sys.modules); "
        "print(','.join(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "", f"importing {package} imports {done.stdout.strip()}"
