import pathlib
import wave

import numpy as np
import pytest
import trio

from anonsip import LocalError
from anonsip.media._quality import (
    InterarrivalJitter,
    RoundTrip,
    e_model_mos,
    e_model_r,
    opus_ie,
)
from anonsip.media.io._audio import (
    ClockedSink,
    ClockedSource,
    DeviceSink,
    DeviceSource,
    MemorySink,
    SilenceSource,
    WavSink,
    WavSource,
)
from anonsip.media.io._call_audio import GatedSink

from .conftest import write_wav


async def test_wav_source_is_paced_to_real_time(
    tmp_path: pathlib.Path, autojump_clock: trio.abc.Clock
) -> None:
    pcm = np.arange(16000 + 100, dtype="<i2")  # a second and a bit
    write_wav(tmp_path / "a.wav", pcm)
    src = WavSource(tmp_path / "a.wav")
    start = trio.current_time()
    frames = []
    while (f := await src.read_frame()) is not None:
        frames.append(f)
    src.close()
    assert len(frames) == 51
    assert all(len(f) == 640 for f in frames)
    assert b"".join(frames)[: 2 * len(pcm)] == pcm.tobytes()
    assert b"".join(frames)[2 * len(pcm) :] == b"\0" * (51 * 640 - 2 * len(pcm))
    # Frame n is released at start + n * 20 ms; the end is noticed at slot 51.
    assert trio.current_time() - start == pytest.approx(1.02)


async def test_wav_source_loops(tmp_path: pathlib.Path) -> None:
    write_wav(tmp_path / "a.wav", np.ones(320, dtype="<i2"))
    src = WavSource(tmp_path / "a.wav", paced=False, loop=True)
    for _ in range(5):
        assert await src.read_frame() == np.ones(320, dtype="<i2").tobytes()


async def test_wav_source_converts_any_common_format(tmp_path: pathlib.Path) -> None:
    """espeak-ng's 22.05 kHz, a 44.1 kHz stereo file: both play at the call's 16 kHz."""
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype("<i2")
    write_wav(tmp_path / "a.wav", tone, rate=22050)
    src = WavSource(tmp_path / "a.wav", paced=False)
    frames = []
    while (frame := await src.read_frame()) is not None:
        frames.append(frame)
    pcm = np.frombuffer(b"".join(frames), dtype="<i2")
    assert abs(len(pcm) - 16000) <= 320  # one second, at the call's rate
    spectrum = np.abs(np.fft.rfft(pcm[:16000].astype(float)))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # still a 440 Hz tone
    stereo = np.repeat(tone[:, None], 2, axis=1).reshape(-1)
    write_wav(tmp_path / "b.wav", stereo, channels=2, rate=44100)
    assert await WavSource(tmp_path / "b.wav", paced=False).read_frame() is not None


def test_wav_source_refuses_what_it_cannot_read(tmp_path: pathlib.Path) -> None:
    with pytest.raises(LocalError, match="cannot read"):
        WavSource(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(LocalError, match="cannot read"):
        WavSource(tmp_path / "junk.wav")


async def test_wav_sink_writes_the_rate_asked_for(tmp_path: pathlib.Path) -> None:
    sink = WavSink(tmp_path / "out.wav", sample_rate=16000, file_rate=48000)
    for _ in range(50):
        await sink.write_frame(b"\x10\x00" * 320)
    sink.close()
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert w.getframerate() == 48000
        assert abs(w.getnframes() - 48000) <= 3 * 2


async def test_wav_sink_roundtrip(tmp_path: pathlib.Path) -> None:
    sink = WavSink(tmp_path / "out.wav")
    await sink.write_frame(b"\x01\x00" * 320)
    await sink.write_frame(b"\x02\x00" * 320)
    sink.close()
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            1,
            2,
            16000,
            640,
        )


async def test_memory_sink_is_bounded() -> None:
    sink = MemorySink(max_bytes=1000)
    await sink.write_frame(b"\0" * 640)
    with pytest.raises(LocalError, match="full"):
        await sink.write_frame(b"\0" * 640)


@pytest.mark.parametrize(("cls", "what"), [(DeviceSource, "microphone"), (DeviceSink, "speaker")])
def test_no_fitting_device_lists_devices(cls: type, what: str) -> None:
    with pytest.raises(LocalError, match=f"No {what} named like 'no-such-device-zz'") as info:
        cls(name="no-such-device-zz")
    assert "Devices:" in str(info.value)


def test_e_model() -> None:
    assert opus_ie(24000) == 4.0
    assert opus_ie(20000) == pytest.approx(5.5)
    assert opus_ie(1000) > opus_ie(12000) > opus_ie(32000) >= opus_ie(10**6)
    assert e_model_r(one_way_delay_ms=0, bitrate=24000) == pytest.approx(89.2)
    good = e_model_mos(one_way_delay_ms=150, bitrate=24000)
    slow = e_model_mos(one_way_delay_ms=500, bitrate=24000)
    lossy = e_model_mos(one_way_delay_ms=150, bitrate=24000, concealed_percent=5)
    assert 4.0 < good < 4.5
    assert slow < good - 0.5
    assert lossy < good
    assert e_model_mos(one_way_delay_ms=5000, bitrate=6000) == 1.0


def test_rfc3550_jitter() -> None:
    j = InterarrivalJitter()
    for i in range(100):
        j.update(send_ms=20 * i, arrival_ms=20 * i + 250)
    assert j.jitter_ms == 0
    for i in range(100, 1000):
        j.update(send_ms=20 * i, arrival_ms=20 * i + 250 + (10 if i % 2 else 0))
    assert j.jitter_ms == pytest.approx(10, rel=0.01)


def test_round_trip() -> None:
    rt = RoundTrip()
    assert rt.update(now_ms=1600, echo_ms=1000, hold_ms=100) == 500
    rt.update(now_ms=2600, echo_ms=2000, hold_ms=0)
    assert rt.smoothed_ms == pytest.approx(500 * 0.875 + 600 / 8)


async def test_wav_sink_keeps_its_header_current_each_second(tmp_path: pathlib.Path) -> None:
    sink = WavSink(tmp_path / "out.wav")
    for _ in range(120):
        await sink.write_frame(b"\x01\x00" * 320)
    # Readable while still recording: the header says at least the first 100 frames.
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert w.getnframes() == 100 * 320
    sink.close()
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert w.getnframes() == 120 * 320


async def test_clocked_sources_give_frames_at_once(tmp_path: pathlib.Path) -> None:
    pcm = np.arange(1000, dtype="<i2")
    write_wav(tmp_path / "a.wav", pcm)
    src = WavSource(tmp_path / "a.wav")
    assert isinstance(src, ClockedSource)
    frames = [src.next_frame() for _ in range(5)]
    assert frames[0] == pcm[:320].tobytes()
    assert frames[3] == pcm[960:].tobytes().ljust(640, b"\0")  # the last frame is padded
    assert frames[4] is None
    silence = SilenceSource(seconds=0.1)
    assert [silence.next_frame() for _ in range(6)] == [bytes(640)] * 5 + [None]


async def test_a_gate_over_a_sink_that_never_waits_is_written_in_passing() -> None:
    memory = MemorySink()
    gate = GatedSink(memory)
    clocked = gate.gated()
    assert isinstance(clocked, ClockedSink)
    clocked.write_now(b"\x01\x00" * 320)
    gate.open = False  # held: silence, at the same rate
    clocked.write_now(b"\x01\x00" * 320)
    await clocked.write_frame(b"\x01\x00" * 320)
    assert bytes(memory.pcm) == b"\x01\x00" * 320 + bytes(1280)

    class Waits:
        async def write_frame(self, pcm: bytes) -> None:
            await trio.lowlevel.checkpoint()

    waiting = GatedSink(Waits())
    assert waiting.gated() is waiting
    assert not isinstance(waiting.gated(), ClockedSink)
