"""The sound-devices screen (F9, /devices): the devices calls can use, by name.

The node lists them (``audio.devices``); the user picks a microphone and a
speaker for the next calls, or leaves the system's default.
"""

from __future__ import annotations

import dataclasses

from prompt_toolkit.formatted_text import StyleAndTextTuples

from anonsip.control import AudioDevicesView
from tui._scroll import printable

__all__ = ["DeviceChoice", "device_entries", "render_devices"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceChoice:
    """The devices the next calls use; None is the system's default."""

    input: str | None = None
    output: str | None = None


def device_entries(devices: AudioDevicesView | None) -> list[tuple[str, str | None]]:
    """What the screen lists, in order: (kind, name), a None name being the default."""
    if devices is None:
        return []
    return [
        ("input", None),
        *(("input", name) for name in devices.inputs),
        ("output", None),
        *(("output", name) for name in devices.outputs),
    ]


def render_devices(
    devices: AudioDevicesView | None, choice: DeviceChoice, selected: int
) -> StyleAndTextTuples:
    fragments: StyleAndTextTuples = [("class:screen.heading", "Sound devices for calls\n")]
    if devices is None:
        return [*fragments, ("class:hint", "\nasking the node…")]
    if devices.problem:
        fragments.append(("class:notice.error", f"\n{printable(devices.problem)}\n"))
    kind_shown = ""
    for index, (kind, name) in enumerate(device_entries(devices)):
        if kind != kind_shown:
            heading = "Microphone (input)" if kind == "input" else "Speaker (output)"
            fragments.append(("class:screen.key", f"\n{heading}\n"))
            kind_shown = kind
        chosen = (choice.input if kind == "input" else choice.output) == name
        style = "class:request.selected" if index == selected else ""
        label = "the system's default" if name is None else printable(name)
        fragments.append((style, f" {'●' if chosen else '○'} {label}\n"))
    fragments.append(
        ("class:hint", "\nup/down choose   Enter use it for the next calls   Esc close")
    )
    return fragments
