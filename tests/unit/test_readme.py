"""The README's layout table lists every package of the tree (and nothing that is gone)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_package_is_in_the_layout_table() -> None:
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout") :]
    layout = layout[: layout.index("\n## ", 1)]
    listed = set(re.findall(r"`([a-z_/]+/)`", layout))
    packages = {f"{p.parent.relative_to(ROOT)}/" for p in ROOT.glob("anonsip/*/__init__.py")}
    packages |= {"onion/", "tui/", "bench/", "docs/"}
    nested = {"anonsip/media/io/", "anonsip/dht/sim", "onion/testnet"}
    assert packages <= listed | nested, f"missing from the README: {packages - listed}"
    for entry in listed:
        assert (ROOT / entry).is_dir(), f"the README lists {entry}, which does not exist"
