import itertools
import statistics

import pytest

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


def test_frames_must_be_in_order() -> None:
    jb = JitterBuffer()
    jb.put(seq=5, send_ms=100, arrival_ms=350, payload=b"", speech=False)
    with pytest.raises(LocalError):
        jb.put(seq=5, send_ms=100, arrival_ms=351, payload=b"", speech=False)


def test_adaptive_never_drops_speech_and_beats_waiting_forever() -> None:
    jb, records, speech = run(JitterPolicy())
    played = {r.seq for r in records if r.seq is not None}
    assert all(i in played for i in range(N) if speech[i])  # only silence is skipped
    s = jb.statistics()
    assert s.compressed_frames == 0
    assert s.jumps == 0
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
        max_delay_ms=10_000,
        capacity_frames=1000,
    )
    jb = JitterBuffer(policy)
    for i in range(200):  # all speech, 2 s behind
        jb.put(seq=i, send_ms=20 * i, arrival_ms=250, payload=b"", speech=True)
    events = [jb.pop(2250 + 20 * k) for k in range(100)]
    compressed = jb.statistics().compressed_frames
    assert 1 <= compressed <= 100 // 10
    assert sum(isinstance(e, Play) for e in events) == 100


def test_jump_past_the_cap() -> None:
    jb = JitterBuffer(JitterPolicy(max_delay_ms=1000))
    for i in range(100):  # a 2 s stall, then everything at once
        jb.put(seq=i, send_ms=20 * i, arrival_ms=2250 + 20 * 0, payload=b"", speech=True)
    jb.pop(2250)
    s = jb.statistics()
    assert s.jumps == 1
    assert s.dropped_frames > 0
    assert s.current_delay_ms <= s.target_delay_ms + 20


def test_sender_gaps_are_skipped_and_counted() -> None:
    jb = JitterBuffer(JitterPolicy(min_target_ms=40))
    jb.put(seq=0, send_ms=0, arrival_ms=250, payload=b"", speech=True)
    jb.put(seq=3, send_ms=60, arrival_ms=310, payload=b"", speech=True)
    assert isinstance(jb.pop(300), Play)
    assert jb.pop(320) == Play(seq=3, payload=b"", speech=True, send_ms=60)
    assert jb.statistics().missing_frames == 2


def test_capacity_is_bounded() -> None:
    jb = JitterBuffer(JitterPolicy(capacity_frames=10))
    for i in range(50):
        jb.put(seq=i, send_ms=20 * i, arrival_ms=250, payload=b"", speech=True)
    s = jb.statistics()
    assert s.buffered_frames == 10
    assert s.dropped_frames == 40


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_policy_comparison_on_tor_model(seed: int) -> None:
    adaptive, a_rec, _ = run(JitterPolicy(), seed)
    fixed, f_rec, _ = run(JitterPolicy(adaptive=False, min_target_ms=300), seed)
    # A large fixed buffer conceals less but costs far more latency.
    assert fixed.statistics().concealed_frames <= adaptive.statistics().concealed_frames
    assert statistics.mean(mouth_to_ear(a_rec)) + 100 < statistics.mean(mouth_to_ear(f_rec))
