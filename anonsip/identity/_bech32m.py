"""Bech32m encoding, as specified in BIP-350 (which amends BIP-173).

Written here rather than imported so the address format has no dependency
we do not control.  The BCH checksum guarantees that any error affecting at
most four characters of a string of at most 89 characters is detected, so a
single mistyped character in an address is always caught.
"""

from collections.abc import Sequence

from anonsip.identity._errors import InvalidAddress

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(CHARSET)}
BECH32M_CONST = 0x2BC830A3
MAX_LENGTH = 90
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: Sequence[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= _GENERATOR[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _create_checksum(hrp: str, data: Sequence[int]) -> list[int]:
    values = _hrp_expand(hrp) + list(data)
    polymod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ BECH32M_CONST
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def encode(hrp: str, data: Sequence[int], *, max_length: int = MAX_LENGTH) -> str:
    """Encode 5-bit ``data`` under the human-readable part ``hrp`` (lower case).

    Longer strings than BIP-350's 90 characters (``max_length``, up to the
    code's 1023) still catch every single-character change: the generator
    divides no single-symbol error, whatever the length.
    """
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp) or hrp != hrp.lower():
        raise ValueError("the human-readable part must be non-empty lower-case printable ASCII")
    if any(not 0 <= d < 32 for d in data):
        raise ValueError("bech32m data values are 5-bit")
    result = hrp + "1" + "".join(CHARSET[d] for d in [*data, *_create_checksum(hrp, data)])
    if len(result) > max_length:
        raise ValueError(f"bech32m strings here are at most {max_length} characters")
    return result


def decode(text: str, *, max_length: int = MAX_LENGTH) -> tuple[str, list[int]]:
    """Return ``(hrp, data)`` (lower-case hrp, 5-bit values) or raise ``InvalidAddress``.

    The error message says what is wrong, for a person who typed the text.
    """
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise InvalidAddress("it contains a space or a character that cannot appear in it")
    if text.lower() != text and text.upper() != text:
        raise InvalidAddress("it mixes upper and lower case letters; use one case only")
    if len(text) > max_length:
        raise InvalidAddress(f"it is too long ({len(text)} characters)")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 0:
        raise InvalidAddress("the separator '1' after the prefix is missing")
    if pos == 0:
        raise InvalidAddress("the prefix before the '1' is missing")
    if pos + 7 > len(text):
        raise InvalidAddress("it is too short: the checksum is incomplete")
    hrp = text[:pos]
    data: list[int] = []
    for offset, char in enumerate(text[pos + 1 :], start=pos + 2):
        value = _CHARSET_REV.get(char)
        if value is None:
            raise InvalidAddress(
                f"character {offset} ({char!r}) is not allowed here "
                "(1, b, i and o never appear after the separator)"
            )
        data.append(value)
    if _polymod(_hrp_expand(hrp) + data) != BECH32M_CONST:
        raise InvalidAddress("the checksum does not match: a character is mistyped or missing")
    return hrp, data[:-6]


def convert_bits(data: Sequence[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    """Regroup bits (BIP-173 ``convertbits``); ``ValueError`` on bad padding."""
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise ValueError("value out of range")
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        raise ValueError("invalid padding")
    return out
