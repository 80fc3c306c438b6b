import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip import LocalError, RemoteProtocolError
from anonsip.call import Direction, MediaPreferences, SessionDescription, answer_direction
from anonsip.call._sdp import negotiate_answer

SAMPLE = SessionDescription(
    session_id=42,
    version=3,
    sample_rate=16000,
    frame_ms=20,
    bitrate=24000,
    direction=Direction.SENDONLY,
)

# A body as another implementation might write it: extra lines, LF endings,
# extra payload types and fmtp parameters, in another order.
FOREIGN = (
    b"v=0\no=alice 7 9 IN IP4 0.0.0.0\ns=call\nc=IN IP4 0.0.0.0\nt=0 0\n"
    b"a=tool:foo\nm=audio 9 TCP/ANONSIP 96 111\na=rtpmap:96 opus/48000/2\n"
    b"a=fmtp:96 useinbandfec=1; maxplaybackrate=24000;maxaveragebitrate=32000\n"
    b"a=ptime:40\na=recvonly\na=x-unknown\n"
)


def test_roundtrip() -> None:
    body = SAMPLE.to_bytes()
    assert b"a=sendonly\r\n" in body
    assert b"a=rtpmap:111 opus/48000/2" in body
    assert SessionDescription.parse(body) == SAMPLE


def test_foreign_body() -> None:
    sd = SessionDescription.parse(FOREIGN)
    assert sd == SessionDescription(
        session_id=7,
        version=9,
        sample_rate=24000,
        frame_ms=40,
        bitrate=32000,
        direction=Direction.RECVONLY,
    )


def test_maxplaybackrate_snaps_down() -> None:
    body = SAMPLE.to_bytes().replace(b"maxplaybackrate=16000", b"maxplaybackrate=22050")
    assert SessionDescription.parse(body).sample_rate == 16000


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b"opus/48000/2", b"PCMU/8000", "not Opus"),
        (b"a=sendonly", b"a=sendonly\r\na=recvonly", "more than one direction"),
        (b"m=audio 9 TCP/ANONSIP 111", b"m=video 9 TCP/ANONSIP 111", "no anonsip audio"),
        (b"a=ptime:20", b"a=ptime:30", "ptime"),
        (b"maxaveragebitrate=24000", b"maxaveragebitrate=99999999", "out of range"),
        (b"maxaveragebitrate=24000", b"maxaveragebitrate=-5", "not a number"),
        (b"o=- 42 3", b"o=- 99999999999999999999 3", "not a number"),
        (b"v=0", b"v=1", "v=0"),
        (b"s=-", b"s=\x07", "control"),
        (b"s=-", b"S-", "x=value"),
        (b"t=0 0", b"t=0 0\r\nm=audio 9 TCP/ANONSIP 111", "more than one media"),
    ],
)
def test_rejects(old: bytes, new: bytes, match: str) -> None:
    body = SAMPLE.to_bytes().replace(old, new)
    assert body != SAMPLE.to_bytes()
    with pytest.raises(RemoteProtocolError, match=match):
        SessionDescription.parse(body)


def test_limits() -> None:
    with pytest.raises(RemoteProtocolError, match="longer"):
        SessionDescription.parse(SAMPLE.to_bytes() + b"a=x\r\n" * 1000)
    with pytest.raises(RemoteProtocolError, match="lines"):
        SessionDescription.parse(SAMPLE.to_bytes() + b"a=x\r\n" * 60)
    with pytest.raises(RemoteProtocolError, match="ASCII"):
        SessionDescription.parse(SAMPLE.to_bytes().replace(b"s=-", "s=\u00e9".encode()))


def test_every_truncation_parses_or_is_remote_error() -> None:
    body = SAMPLE.to_bytes()
    for cut in range(len(body)):
        with contextlib.suppress(RemoteProtocolError):
            SessionDescription.parse(body[:cut])


@settings(max_examples=400)
@given(st.binary(max_size=800))
def test_random_bytes_raise_only_remote_errors(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        SessionDescription.parse(data)


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [*FOREIGN.split(b"\n"), b"a=sendrecv", b"m=audio 1 x 1", b"a=fmtp:96 =;;="]
        ),
        max_size=20,
    )
)
def test_shuffled_lines_raise_only_remote_errors(lines: list[bytes]) -> None:
    with contextlib.suppress(RemoteProtocolError):
        SessionDescription.parse(b"v=0\n" + b"\n".join(lines))


@pytest.mark.parametrize(
    ("offer", "hold", "answer"),
    [
        (Direction.SENDRECV, False, Direction.SENDRECV),
        (Direction.SENDONLY, False, Direction.RECVONLY),
        (Direction.RECVONLY, False, Direction.SENDONLY),
        (Direction.INACTIVE, False, Direction.INACTIVE),
        (Direction.SENDRECV, True, Direction.SENDONLY),
        (Direction.SENDONLY, True, Direction.INACTIVE),
    ],
)
def test_rfc3264_answer_direction(offer: Direction, hold: bool, answer: Direction) -> None:
    assert answer_direction(offer, local_hold=hold) is answer


def test_negotiation_takes_the_lower_limits() -> None:
    offer = SessionDescription(session_id=1, version=1, sample_rate=48000, bitrate=64000)
    answer = negotiate_answer(
        offer,
        MediaPreferences(sample_rate=16000, bitrate=24000),
        session_id=9,
        version=1,
        local_hold=False,
    )
    assert (answer.sample_rate, answer.bitrate, answer.session_id) == (16000, 24000, 9)
    with pytest.raises(LocalError):
        MediaPreferences(sample_rate=44100)


def test_paths_are_offered_and_the_answer_takes_the_fewer() -> None:
    offer = SessionDescription(session_id=1, version=1, paths=3)
    assert b"a=x-anonsip-paths:3\r\n" in offer.to_bytes()
    assert SessionDescription.parse(offer.to_bytes()).paths == 3
    answer = negotiate_answer(
        offer, MediaPreferences(paths=2), session_id=2, version=1, local_hold=False
    )
    assert answer.paths == 2
    single = negotiate_answer(
        offer, MediaPreferences(paths=1), session_id=2, version=1, local_hold=False
    )
    assert single.paths == 1
    assert SessionDescription.parse(FOREIGN).paths == 1  # a body that does not say: one path
    with pytest.raises(LocalError):
        MediaPreferences(paths=0)


@pytest.mark.parametrize("value", [b"0", b"5", b"two", b"", b"-1"])
def test_impossible_path_counts_are_refused(value: bytes) -> None:
    body = SAMPLE.to_bytes().replace(b"a=x-anonsip-paths:1", b"a=x-anonsip-paths:" + value)
    with pytest.raises(RemoteProtocolError, match="paths"):
        SessionDescription.parse(body)


def test_a_second_paths_attribute_is_refused() -> None:
    body = SAMPLE.to_bytes() + b"a=x-anonsip-paths:2\r\n"
    with pytest.raises(RemoteProtocolError, match="paths"):
        SessionDescription.parse(body)
