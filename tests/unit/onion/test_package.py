"""``import onion`` is sans-IO; its trio names load on first use and stay the same objects."""

import subprocess
import sys

import pytest

import onion


def test_every_public_name_resolves() -> None:
    for name in onion.__all__:
        assert getattr(onion, name) is not None, name
    assert set(onion.__all__) <= set(dir(onion))


def test_a_lazy_name_is_the_object_its_module_defines() -> None:
    from onion._process import launch_tor
    from onion._tor import Tor

    assert onion.launch_tor is launch_tor
    assert onion.Tor is Tor


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'launch_rockets'"):
        _ = onion.launch_rockets  # type: ignore[attr-defined]


def test_the_codec_does_not_load_trio_but_a_trio_name_does() -> None:
    probe = (
        "import sys; from onion import public_key_from_onion_address; "
        "before = 'trio' in sys.modules; from onion import Tor; "
        "print(before, 'trio' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
