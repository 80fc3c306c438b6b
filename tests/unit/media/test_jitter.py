import itertools
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip import LocalError
from anonsip.media._delaymodel import (
    DelayModel,
    PlayoutRecord,
    TorLikeDelay,
    replay_trace,
    talkspurts,
)
from anonsip.media._jitter import Conceal, Idle, JitterBuffer, JitterPolicy, Play

N = 3000  # one minute of 20 ms frames


def mouth_to_ear(records: list[PlayoutRecord]) -> list[float]:
    return [r.time_ms - r.seq * 20 for r in records if r.seq is not None]


def run(
    policy: JitterPolicy, seed: int = 1
) -> tuple[JitterBuffer, list[PlayoutRecord], list[bool]]:
    arrivals = TorLikeDelay(seed=seed).trace(N)
    speech = talkspurts(N, seed=seed)
    jb = JitterBuffer(policy)
    return jb, replay_trace(jb, arrivals, speech=speech), speech


def test_delay_model_is_seeded_in_order_and_tor_like() -> None:
    a = TorLikeDelay(seed=3).trace(N)
    assert a == TorLikeDelay(seed=3).trace(N)
    assert a != TorLikeDelay(seed=4).trace(N)
    assert all(x < y for x, y in itertools.pairwise(a))
    transit = [t - 20 * i for i, t in enumerate(a)]
    assert min(transit) > 245
    assert 250 < statistics.median(transit) < 320
    assert max(transit) > 400  # stalls happen
    # Bursts: after a stall many frames arrive within a millisecond of each other.
    gaps = [y - x for x, y in itertools.pairwise(a)]
    assert sum(g < 1 for g in gaps) > 20


def test_clean_path_plays_everything_in_order() -> None:
    model = DelayModel(jitter_ms=0.001, walk_ms=0.0, stalls_per_s=0.0)
    arrivals = TorLikeDelay(model, seed=0).trace(200)
    jb = JitterBuffer(JitterPolicy(min_target_ms=40))
    records = replay_trace(jb, arrivals, payloads=[bytes([i % 256]) for i in range(200)])
    played = [r.event for r in records if isinstance(r.event, Play)]
    assert [e.seq for e in played] == list(range(200))
    assert [e.payload for e in played] == [bytes([i % 256]) for i in range(200)]
    s = jb.statistics()
    assert s.concealed_frames == 0
    assert s.dropped_frames == 0
    assert s.target_delay_ms == pytest.approx(40.0)  # min target on a clean path


def test_waits_for_target_before_starting() -> None:
    jb = JitterBuffer(JitterPolicy(min_target_ms=60))
    jb.put(seq=0, send_ms=0, arrival_ms=250, payload=b"a", speech=True)
    assert jb.pop(250) == Idle()
    assert jb.pop(290) == Idle()
    assert isinstance(jb.pop(310), Play)
    assert jb.pop(330) == Conceal(reason="underrun")
    jb.put(seq=1, send_ms=20, arrival_ms=345, payload=b"b", speech=True)
    assert jb.pop(350) == Play(seq=1, payload=b"b", speech=True, send_ms=20)
    s = jb.statistics()
    assert (s.concealed_frames, s.late_frames, s.played_frames) == (1, 1, 2)
    jb.end_of_stream()
    assert jb.pop(370) == Idle(finished=True)


def test_frames_may_come_in_any_order_and_play_in_sequence() -> None:
    jb = JitterBuffer(JitterPolicy(min_target_ms=40))
    for seq in (2, 0, 1):
        jb.put(seq=seq, send_ms=20 * seq, arrival_ms=250, payload=bytes([seq]), speech=True)
    jb.put(seq=1, send_ms=20, arrival_ms=251, payload=b"again", speech=True)  # a second copy
    played = [jb.pop(290 + 20 * k) for k in range(3)]
    assert [e.seq for e in played if isinstance(e, Play)] == [0, 1, 2]
    assert [e.payload for e in played if isinstance(e, Play)] == [b"\0", b"\1", b"\2"]
    assert jb.statistics().discarded_frames == 1


def test_a_frame_missing_in_its_slot_is_concealed_and_discarded_if_it_comes_later() -> None:
    jb = JitterBuffer(JitterPolicy(adaptive=False, min_target_ms=40))
    jb.put(seq=0, send_ms=0, arrival_ms=250, payload=b"a", speech=True)
    jb.put(seq=2, send_ms=40, arrival_ms=260, payload=b"c", speech=True)
    assert isinstance(jb.pop(290), Play)
    assert jb.pop(310) == Conceal(reason="missing")  # frame 1's slot, and it is not here
    jb.put(seq=1, send_ms=20, arrival_ms=315, payload=b"b", speech=True)  # too late
    assert jb.pop(330) == Play(seq=2, payload=b"c", speech=True, send_ms=40)
    s = jb.statistics()
    assert (s.missing_frames, s.discarded_frames, s.played_frames) == (1, 1, 2)


def test_negative_sequence_numbers_are_refused() -> None:
    with pytest.raises(LocalError):
        JitterBuffer().put(seq=-1, send_ms=0, arrival_ms=0, payload=b"", speech=False)


def test_adaptive_never_drops_speech_and_beats_waiting_forever() -> None:
    jb, records, speech = run(JitterPolicy())
    played = {r.seq for r in records if r.seq is not None}
    assert all(i in played for i in range(N) if speech[i])  # only silence is skipped
    s = jb.statistics()
    assert s.compressed_frames == 0
    assert s.dropped_speech_frames == 0
    assert s.concealed_frames < 0.03 * N
    never, never_records, _ = run(JitterPolicy(catch_up_in_silence=False))
    assert never.statistics().dropped_frames == 0
    # Never catching up keeps every stall's delay for the rest of the call.
    assert statistics.mean(mouth_to_ear(records)) + 100 < statistics.mean(
        mouth_to_ear(never_records)
    )


def test_target_grows_fast_and_shrinks_slowly() -> None:
    policy = JitterPolicy(min_target_ms=40, shrink_ms_per_s=10.0)
    jb = JitterBuffer(policy)
    t = 0
    for i in range(250):  # 5 s clean at 250 ms
        jb.put(seq=i, send_ms=20 * i, arrival_ms=20 * i + 250, payload=b"", speech=False)
        t = i
    assert jb.statistics().target_delay_ms == pytest.approx(40.0)
    # A 400 ms stall: the next 20 frames arrive together.
    for i in range(t + 1, t + 21):
        jb.put(seq=i, send_ms=20 * i, arrival_ms=20 * (t + 21) + 250, payload=b"", speech=False)
    grown = jb.statistics().target_delay_ms
    assert grown > 150  # from 40 ms to the p95 of the stall at once
    last = grown
    for i in range(t + 21, t + 21 + 500):  # 10 s clean again
        jb.put(seq=i, send_ms=20 * i, arrival_ms=20 * i + 250, payload=b"", speech=False)
        now = jb.statistics().target_delay_ms
        assert last - now <= 10.0 * 0.02 + 1e-9  # at most 10 ms per second
        last = now
    assert last < grown


def _late_first_path(held: bool) -> JitterBuffer:
    """3 s said before the first path opened (at 3 s, 250 ms one way), then the call."""
    jb = JitterBuffer(JitterPolicy(min_target_ms=60))
    opened = 3000
    for i in range(150):  # the start backlog, all at once
        jb.put(
            seq=i, send_ms=20 * i, arrival_ms=opened + 250, payload=b"", speech=i < 40, held=held
        )
    for i in range(150, 250):  # then each frame as it is said
        jb.put(seq=i, send_ms=20 * i, arrival_ms=20 * i + 250, payload=b"", speech=False)
    return jb


def test_a_held_start_backlog_does_not_raise_the_target() -> None:
    held = _late_first_path(held=True).statistics()
    assert held.target_delay_ms == pytest.approx(60.0)
    assert held.base_transit_ms == pytest.approx(250.0)
    # The same burst unflagged reads as a 3 s stall of the network.
    stalled = _late_first_path(held=False).statistics()
    assert stalled.target_delay_ms == pytest.approx(800.0)


def test_held_frames_alone_play_at_once_and_catch_up_in_silence() -> None:
    jb = JitterBuffer(JitterPolicy(min_target_ms=60))
    # 1 s of silence, 1 s of speech, 1 s of silence, held 3 s, arrive together at 3.25 s.
    speech = [50 <= i < 100 for i in range(150)]
    for i in range(150):
        jb.put(seq=i, send_ms=20 * i, arrival_ms=3250, payload=b"", speech=speech[i], held=True)
    events = [jb.pop(3250 + 20 * k) for k in range(60)]
    played = [e for e in events if isinstance(e, Play)]
    assert played, "nothing played from a buffer holding only held frames"
    # The leading silence is skipped (all but the frame played first, whose
    # predecessor is unknown, and those next to speech); every speech frame plays.
    assert [e.seq for e in played if e.speech] == list(range(50, 100))
    assert played[0].seq < 50
    before_speech = [e.seq for e in played if e.seq < 50]
    assert before_speech == [0, 47, 48, 49]  # the first, then those next to the onset
    assert jb.statistics().dropped_speech_frames == 0


def test_catches_up_only_in_silence() -> None:
    jb = JitterBuffer(JitterPolicy(adaptive=False, min_target_ms=40))
    for i in range(30):  # 30 frames arrive at once after a 600 ms stall
        jb.put(seq=i, send_ms=20 * i, arrival_ms=850, payload=b"", speech=i < 10)
    events = [jb.pop(850 + 20 * k) for k in range(30)]
    played = [e.seq for e in events if isinstance(e, Play)]
    assert played[:10] == list(range(10))  # all speech played
    assert len(played) < 30
    assert jb.statistics().dropped_frames == 30 - len(played) - jb.statistics().buffered_frames


def test_stretches_in_silence_when_target_grows() -> None:
    jb = JitterBuffer(JitterPolicy(adaptive=False, min_target_ms=100))
    jb.put(seq=0, send_ms=0, arrival_ms=250, payload=b"", speech=False)
    assert isinstance(jb.pop(350), Play)
    # The next silent frame is far earlier than target: stretch, not play.
    jb.put(seq=1, send_ms=200, arrival_ms=450, payload=b"", speech=False)
    assert jb.pop(460) == Conceal(reason="stretch")
    assert jb.statistics().stretched_frames == 1


def test_time_compression_is_bounded() -> None:
    policy = JitterPolicy(
        adaptive=False,
        min_target_ms=40,
        compress_every=10,
        compress_above_ms=100,
        capacity_frames=1000,
    )
    jb = JitterBuffer(policy)
    for i in range(200):  # all speech, 2 s behind
        jb.put(seq=i, send_ms=20 * i, arrival_ms=250, payload=b"", speech=True)
    events = [jb.pop(2250 + 20 * k) for k in range(100)]
    compressed = jb.statistics().compressed_frames
    assert 1 <= compressed <= 100 // 10
    assert jb.statistics().dropped_speech_frames == compressed
    assert sum(isinstance(e, Play) for e in events) == 100


def test_far_behind_it_skips_a_whole_silence_at_once_but_no_speech() -> None:
    jb = JitterBuffer(JitterPolicy(adaptive=False, min_target_ms=40))
    speech = [True] * 20 + [False] * 60 + [True] * 20
    for i, flag in enumerate(speech):  # a 2 s stall, then everything at once
        jb.put(seq=i, send_ms=20 * i, arrival_ms=2250, payload=b"", speech=flag)
    played = []
    for k in range(60):
        event = jb.pop(2250 + 20 * k)
        if isinstance(event, Play):
            played.append(event.seq)
    assert played[:20] == list(range(20))  # the speech before the silence, all of it
    assert 20 in played  # the silent frame right after speech is kept
    assert all(seq in played for seq in range(77, 100))  # onset look-ahead, then speech
    s = jb.statistics()
    assert s.dropped_frames > 40  # most of the silence went in one tick
    assert s.played_frames < 60
    assert s.dropped_speech_frames == 0


def test_sender_gaps_are_concealed_in_their_slots() -> None:
    jb = JitterBuffer(JitterPolicy(min_target_ms=40))
    jb.put(seq=0, send_ms=0, arrival_ms=250, payload=b"", speech=True)
    jb.put(seq=3, send_ms=60, arrival_ms=310, payload=b"", speech=True)
    assert isinstance(jb.pop(300), Play)
    assert jb.pop(320) == Conceal(reason="missing")
    assert jb.pop(340) == Conceal(reason="missing")
    assert jb.pop(360) == Play(seq=3, payload=b"", speech=True, send_ms=60)
    assert jb.statistics().missing_frames == 2


def test_a_full_buffer_evicts_silence_first() -> None:
    jb = JitterBuffer(JitterPolicy(capacity_frames=10))
    flags = [True] * 3 + [False] * 40 + [True] * 7
    for i, flag in enumerate(flags):
        jb.put(seq=i, send_ms=20 * i, arrival_ms=250, payload=b"", speech=flag)
    s = jb.statistics()
    assert s.buffered_frames == 10
    assert s.evicted_frames == 40
    assert s.dropped_speech_frames == 0
    for i in range(50):
        jb.put(seq=50 + i, send_ms=20 * (50 + i), arrival_ms=250, payload=b"", speech=True)
    assert jb.statistics().buffered_frames == 10  # all speech now: the bound still holds
    assert jb.statistics().dropped_speech_frames > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_policy_comparison_on_tor_model(seed: int) -> None:
    adaptive, a_rec, _ = run(JitterPolicy(), seed)
    fixed, f_rec, _ = run(JitterPolicy(adaptive=False, min_target_ms=300), seed)
    # A large fixed buffer conceals less but costs far more latency.
    assert fixed.statistics().concealed_frames <= adaptive.statistics().concealed_frames
    assert statistics.mean(mouth_to_ear(a_rec)) + 100 < statistics.mean(mouth_to_ear(f_rec))


# -- catch-up never shortens speech (Hypothesis) ------------------------------------

_speech_runs = st.lists(st.tuples(st.booleans(), st.integers(1, 40)), min_size=1, max_size=30)
_extra_delay = st.lists(st.floats(0, 900, allow_nan=False), min_size=1, max_size=64)


def _flags(runs: list[tuple[bool, int]]) -> list[bool]:
    return [flag for flag, length in runs for _ in range(length)]


@settings(max_examples=150, deadline=None)
@given(runs=_speech_runs, extra=_extra_delay, min_target=st.sampled_from([20.0, 60.0, 100.0]))
def test_catch_up_on_one_path_never_drops_speech_or_its_edges(
    runs: list[tuple[bool, int]], extra: list[float], min_target: float
) -> None:
    speech = _flags(runs)
    n = len(speech)
    arrivals: list[float] = []
    for i in range(n):  # one in-order stream: stalls hold back everything behind them
        arrivals.append(max(20 * i + 50 + extra[i % len(extra)], arrivals[-1] if arrivals else 0))
    jb = JitterBuffer(JitterPolicy(min_target_ms=min_target, capacity_frames=1000))
    records = replay_trace(jb, arrivals, speech=speech)
    played = {r.seq for r in records if r.seq is not None}
    assert all(k in played for k in range(n) if speech[k])
    look = JitterPolicy().silence_lookahead_frames
    for k in set(range(n)) - played:  # skipped to catch up: inside silence only
        assert not speech[k]
        assert k == 0 or not speech[k - 1]
        assert not any(speech[k + 1 : k + 1 + look])
    s = jb.statistics()
    assert s.dropped_speech_frames == 0
    assert s.missing_frames == s.discarded_frames == 0


@settings(max_examples=150, deadline=None)
@given(runs=_speech_runs, a=_extra_delay, b=_extra_delay, alternate=st.booleans())
def test_catch_up_over_two_paths_never_drops_speech(
    runs: list[tuple[bool, int]], a: list[float], b: list[float], alternate: bool
) -> None:
    speech = _flags(runs)
    n = len(speech)
    paths: list[list[float]] = [[], []]
    for i in range(n):
        for p, extra in enumerate((a, b)):
            arrival = 20 * i + 50 + extra[i % len(extra)]
            paths[p].append(max(arrival, paths[p][-1] if paths[p] else 0))
    if alternate:
        arrivals = [paths[i % 2][i] for i in range(n)]
    else:
        arrivals = [min(x, y) for x, y in zip(*paths, strict=True)]
    jb = JitterBuffer(JitterPolicy(capacity_frames=1000))
    records = replay_trace(jb, arrivals, speech=speech)
    played = {r.seq for r in records if r.seq is not None}
    s = jb.statistics()
    assert s.dropped_speech_frames == 0
    lost_speech = sum(1 for k in range(n) if speech[k] and k not in played)
    assert lost_speech <= s.missing_frames + s.discarded_frames  # late, never skipped


def test_the_default_prior_is_lower_when_paths_cover_each_others_stalls() -> None:
    assert JitterPolicy.for_paths(1).min_target_ms == JitterPolicy().min_target_ms == 100
    assert JitterPolicy.for_paths(2).min_target_ms == JitterPolicy.for_paths(3).min_target_ms == 60
    assert JitterPolicy.for_paths(2, frame_ms=40).frame_ms == 40
