"""The path merger: the first copy of each packet wins, copies are dropped, memory is bounded."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip import LocalError
from anonsip.media import PathMerger, derive_media_keys
from anonsip.media._frame import MAX_PATHS


def test_the_first_copy_wins_and_copies_are_dropped() -> None:
    merger = PathMerger()
    assert merger.accept(0, 0)
    assert merger.accept(0, 1)
    assert not merger.accept(1, 0)  # the slower path's copy
    assert merger.accept(1, 2)  # the other path was faster this time
    assert not merger.accept(0, 2)
    assert not merger.accept(1, 1)
    counts = {c.path: c for c in merger.counts()}
    assert (counts[0].received, counts[0].first, counts[0].duplicates) == (3, 2, 1)
    assert (counts[1].received, counts[1].first, counts[1].duplicates) == (3, 1, 2)
    assert merger.duplicates == 3


def test_reordering_across_paths_is_accepted() -> None:
    merger = PathMerger()
    assert merger.accept(0, 5)
    assert merger.accept(1, 3)  # older, but nobody brought it yet
    assert merger.accept(1, 4)
    assert not merger.accept(0, 3)


def test_packets_older_than_the_window_count_as_copies() -> None:
    merger = PathMerger(window=8)
    for seq in range(20):
        assert merger.accept(0, seq)
    assert not merger.accept(1, 12)  # its slot passed long ago
    assert merger.accept(1, 25)
    assert merger.accept(1, 21)  # inside the window and new


def test_impossible_input_is_a_local_error() -> None:
    with pytest.raises(LocalError):
        PathMerger(window=1)
    with pytest.raises(LocalError):
        PathMerger().accept(0, -1)


@settings(max_examples=300, deadline=None)
@given(
    copies=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3000)), min_size=0, max_size=400)
)
def test_each_packet_is_first_once_within_the_window(copies: list[tuple[int, int]]) -> None:
    window = 64
    merger = PathMerger(window=window)
    firsts: list[int] = []
    highest = -1
    for path, seq in copies:
        too_old = seq <= highest - window
        if merger.accept(path, seq):
            assert seq not in firsts
            assert not too_old
            firsts.append(seq)
        else:
            assert too_old or seq in firsts
        highest = max(highest, seq)
    assert sum(c.first for c in merger.counts()) == len(firsts)
    assert sum(c.received for c in merger.counts()) == len(copies)


def test_every_path_has_its_own_keys_and_path_0_keeps_the_single_path_keys() -> None:
    secret = bytes(range(32))
    single = derive_media_keys(secret, "call", caller=True)
    per_path = [derive_media_keys(secret, "call", caller=True, path=i) for i in range(MAX_PATHS)]
    assert per_path[0] == single
    keys = {k.send.key for k in per_path} | {k.receive.key for k in per_path}
    assert len(keys) == 2 * MAX_PATHS
    other = derive_media_keys(secret, "call", caller=False, path=3)
    assert (other.send, other.receive) == (per_path[3].receive, per_path[3].send)
    with pytest.raises(LocalError):
        derive_media_keys(secret, "call", caller=True, path=MAX_PATHS)
