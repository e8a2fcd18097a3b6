"""Strict JSON input: UTF-8 only, bounded integers and nesting, exact decimals, valid Unicode."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from loyalty.errors import InvalidEventError
from loyalty.json_input import NotJsonError, loads
from loyalty.limits import MAX_JSON_DEPTH, MAX_JSON_INTEGER_DIGITS

D = Decimal


def nested_arrays(depth: int) -> bytes:
    """`depth` arrays, one inside the other, the innermost holding a 1."""
    return b"[" * depth + b"1" + b"]" * depth


def nested_objects(depth: int) -> bytes:
    """`depth` objects, one inside the other, the innermost holding "a": 1."""
    return b'{"a":' * (depth - 1) + b'{"a":1}' + b"}" * (depth - 1)


def depth_of(value: Any) -> int:
    """The containers from the top value down to the deepest (a scalar is depth 0)."""
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def refused(raw: bytes) -> NotJsonError:
    with pytest.raises(NotJsonError) as caught:
        loads(raw)
    return caught.value


# ---------------------------------------------------------------------------- valid documents


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b"{}", {}),
        (b"[]", []),
        (b'[1, "x", null, true, false]', [1, "x", None, True, False]),
        (b'{"a": {"b": [1, {"c": "d"}]}}', {"a": {"b": [1, {"c": "d"}]}}),
        (b' \n\t{"a" : 1 }\r\n', {"a": 1}),
        (b"42", 42),
        (b"-7", -7),
        (b"0", 0),
        (b'"text"', "text"),
        (b"null", None),
        (b"true", True),
        (b"false", False),
        (b'"\\n\\t\\"\\\\\\/"', '\n\t"\\/'),
        (b'"\\u00e9"', "é"),
    ],
)
def test_valid_documents_parse_to_their_python_values(raw: bytes, expected: Any) -> None:
    assert loads(raw) == expected


@pytest.mark.parametrize("text", ["ربحت 10 نقاط", "צברת נקודות", "ポイント", "emoji 😀", "é"])
def test_utf8_text_of_any_script_parses(text: str) -> None:
    assert loads(json.dumps({text: text}, ensure_ascii=False).encode()) == {text: text}


def test_integers_stay_python_ints() -> None:
    value = loads(b'{"id": 820982911946154508, "n": [-3, 0]}')

    assert value == {"id": 820982911946154508, "n": [-3, 0]}
    assert type(value["id"]) is int
    assert all(type(n) is int for n in value["n"])


def test_the_last_of_duplicate_keys_wins() -> None:
    assert loads(b'{"a": 1, "a": 2}') == {"a": 2}


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"0.1", "0.1"),
        (b"10.50", "10.50"),
        (b"19.99", "19.99"),
        (b"-2.5", "-2.5"),
        (b"0.00", "0.00"),
        (b"1e3", "1E+3"),
        (b"1E3", "1E+3"),
        (b"1e-8", "1E-8"),
        (b"-2.5e-3", "-0.0025"),
        (b"1.5E+2", "1.5E+2"),
        (b"1e400", "1E+400"),
        (b"1e1000000000", "1E+1000000000"),
        # beyond a float's 17 significant digits, every digit is kept
        (b"123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ],
)
def test_fractions_and_exponents_become_exact_decimals(raw: bytes, expected: str) -> None:
    value = loads(raw)

    assert type(value) is Decimal
    assert value == D(expected)
    assert str(value) == expected


def test_decimals_are_exact_inside_containers() -> None:
    value = loads(b'{"total": 0.1, "lines": [{"price": 19.99}, 0.2]}')

    assert value == {"total": D("0.1"), "lines": [{"price": D("19.99")}, D("0.2")]}
    assert type(value["total"]) is Decimal
    assert value["total"] + value["lines"][1] == D("0.3")  # not 0.30000000000000004


@pytest.mark.parametrize(
    "digits",
    [
        "9" * MAX_JSON_INTEGER_DIGITS,
        "-" + "9" * MAX_JSON_INTEGER_DIGITS,
        "1" + "0" * (MAX_JSON_INTEGER_DIGITS - 1),
        str(2**63 - 1),
        str(2**64),
    ],
)
def test_integers_of_up_to_20_digits_parse_exactly(digits: str) -> None:
    value = loads(digits.encode())

    assert type(value) is int
    assert value == int(digits)


@pytest.mark.parametrize(
    "digits",
    [
        "1" + "0" * MAX_JSON_INTEGER_DIGITS,  # 21 digits
        "-" + "9" * (MAX_JSON_INTEGER_DIGITS + 1),
        str(10**30),
        "1" * 4_300,
        "1" * 4_301,  # beyond Python's int-from-text limit: would be a plain ValueError
        "7" * 100_000,
    ],
    ids=["21-digits", "negative-21-digits", "31-digits", "4300-digits", "4301-digits", "100k"],
)
def test_integers_longer_than_20_digits_are_refused_as_not_json(digits: str) -> None:
    error = refused(digits.encode())

    assert str(error) == "not JSON: an integer longer than 20 digits"


def test_a_long_integer_inside_an_object_is_refused() -> None:
    error = refused(b'{"id": ' + b"9" * 4_301 + b"}")

    assert "integer longer than 20 digits" in str(error)


@pytest.mark.parametrize(
    "raw",
    [
        b"1e1000000000000000000",  # an exponent beyond what Decimal can hold
        b"-1.5E+99999999999999999999",
        b'{"subtotal_price": 1e1000000000000000000}',
    ],
)
def test_a_number_whose_exponent_decimal_cannot_hold_is_refused_as_not_json(raw: bytes) -> None:
    assert str(refused(raw)).startswith("not JSON")


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"Infinity", b"-Infinity", b"[NaN]", b'{"a": Infinity}', b'{"a": [1, -Infinity]}'],
)
def test_nan_and_infinity_are_refused(raw: bytes) -> None:
    error = refused(raw)

    assert str(error).startswith("not JSON: ")
    assert "is not a number" in str(error)


@pytest.mark.parametrize("raw", [b"nan", b"inf", b"+1", b"01", b".5", b"1.", b"0x10", b"1_000"])
def test_numbers_json_does_not_define_are_refused(raw: bytes) -> None:
    assert str(refused(raw)).startswith("not JSON")


# ---------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("build", [nested_arrays, nested_objects], ids=["arrays", "objects"])
def test_exactly_32_levels_of_nesting_parse(build: Any) -> None:
    value = loads(build(MAX_JSON_DEPTH))

    assert depth_of(value) == MAX_JSON_DEPTH


@pytest.mark.parametrize("build", [nested_arrays, nested_objects], ids=["arrays", "objects"])
def test_33_levels_of_nesting_are_refused(build: Any) -> None:
    error = refused(build(MAX_JSON_DEPTH + 1))

    assert str(error) == "not JSON: nested deeper than 32 levels"


def test_empty_containers_count_as_a_level() -> None:
    assert depth_of(loads(b"[" * 32 + b"]" * 32)) == 32
    assert "nested deeper" in str(refused(b"[" * 33 + b"]" * 33))
    assert "nested deeper" in str(refused(b'{"a":' * 32 + b"{}" + b"}" * 32))


def test_mixed_arrays_and_objects_at_32_levels_parse_and_at_33_are_refused() -> None:
    def mixed(depth: int) -> bytes:
        opening = b"".join(b'{"k":' if level % 2 else b"[" for level in range(depth))
        closing = b"".join(b"}" if level % 2 else b"]" for level in reversed(range(depth)))
        return opening + b"0" + closing

    assert depth_of(loads(mixed(32))) == 32
    assert "nested deeper" in str(refused(mixed(33)))


def test_one_branch_too_deep_among_shallow_ones_is_refused() -> None:
    shallow = b",".join([b'{"a": [1, 2, {"b": 3}]}'] * 50)
    assert depth_of(loads(b"[" + shallow + b"," + nested_arrays(31) + b"]")) == 32

    error = refused(b"[" + shallow + b"," + nested_arrays(32) + b"]")

    assert "nested deeper" in str(error)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 200_000,
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 1_000 + b"1" + b"}" * 1_000,
        b'{"a":' * 1_000,
        nested_arrays(1_000),
        nested_arrays(100),
    ],
    ids=[
        "open-arrays-200k",
        "closed-arrays-200k",
        "objects-1000",
        "open-objects-1000",
        "a1000",
        "a100",
    ],
)
def test_hostile_nesting_is_refused_as_not_json_without_recursion_error(raw: bytes) -> None:
    error = refused(raw)  # a RecursionError would escape pytest.raises(NotJsonError)

    assert str(error).startswith("not JSON: ")


# ---------------------------------------------------------------------------- encodings

DOC = '{"id": 1, "name": "é"}'


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbf" + DOC.encode("utf-8"),
        b"\xef\xbb\xbf{}",
    ],
    ids=["doc", "empty-object"],
)
def test_utf8_with_a_byte_order_mark_is_refused(raw: bytes) -> None:
    assert str(refused(raw)) == "not JSON: UTF-8 with a byte order mark"


@pytest.mark.parametrize(
    "codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]
)
@pytest.mark.parametrize("doc", [DOC, "{}", "1", '"a"'])
def test_utf16_and_utf32_with_or_without_bom_are_refused(codec: str, doc: str) -> None:
    # ("utf-16" and "utf-32" write a byte order mark, the -le/-be codecs do not)
    assert str(refused(doc.encode(codec))).startswith("not JSON: ")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": "\xff"}',
        b'"\xc0\xaf"',  # an overlong encoding of "/"
        b'"\xed\xa0\x80"',  # a surrogate encoded directly in UTF-8
        b'"\xe2\x82"',  # a truncated sequence
        b'"\x80"',  # a lone continuation byte
        '"é"'.encode("latin-1"),
        b'"\xf4\x90\x80\x80"',  # beyond U+10FFFF
        b"\xff\xfe\xfa",
    ],
    ids=[
        "ff",
        "overlong",
        "utf8-surrogate",
        "truncated",
        "continuation",
        "latin1",
        "too-high",
        "ff-fe",
    ],
)
def test_bytes_that_are_not_utf8_are_refused(raw: bytes) -> None:
    assert str(refused(raw)).startswith("not JSON: not UTF-8 (")


# ---------------------------------------------------------------------------- surrogates


@pytest.mark.parametrize(
    "raw",
    [
        b'"\\ud800"',
        b'"\\udc00"',
        b'"\\uDBFF"',
        b'"\\uDfFf"',
        b'"a\\ud83dz"',  # a high surrogate followed by a plain character
        b'"\\ude00\\ud83d"',  # a pair in the wrong order
        b'"\\ud83d\\ud83d"',  # two high surrogates
        b'{"\\ud800": 1}',
        b'{"k": "\\udc00"}',
        b'{"\\udc00": {"a": 1}}',
        b'["ok", ["\\ud800"]]',
        b'[[[[["\\udfff"]]]]]',
        b'{"a": ["x", {"b": "\\ud800"}]}',
        b'{"a": [{"\\ud800": null}]}',
    ],
)
def test_lone_surrogate_escapes_are_refused(raw: bytes) -> None:
    assert str(refused(raw)) == "not JSON: a string holds a lone UTF-16 surrogate"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'"\\ud83d\\ude00"', "😀"),
        (b'"\\uD83D\\uDE00"', "😀"),
        (b'{"\\ud83d\\ude00": ["\\ud83d\\ude00"]}', {"😀": ["😀"]}),
        (b'"\\\\ud800"', "\\ud800"),  # an escaped backslash, then plain text
        (b'"\\ud7ff\\ue000"', "\ud7ff\ue000"),  # either side of the surrogate range
    ],
)
def test_valid_surrogate_pairs_and_look_alikes_parse(raw: bytes, expected: Any) -> None:
    value = loads(raw)

    assert value == expected
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # every string is encodable


# ---------------------------------------------------------------------------- errors

INVALID = [
    b"",
    b"1e1000000000000000000",
    b"   ",
    b"{",
    b'{"id": 1',
    b"{not json",
    b'{"a": 1,}',
    b"{'a': 1}",
    b"{} {}",
    b'{"a" 1}',
    b"[1 2]",
    b'"unterminated',
    b'"tab\tinside"',
    b"\x00",
    b"NaN",
    b"1" * 21,
    b"1" * 4_301,
    b"[" * 200_000,
    nested_arrays(33),
    b"\xef\xbb\xbf{}",
    "{}".encode("utf-16"),
    "{}".encode("utf-16-be"),
    "{}".encode("utf-32"),
    b'"\xff"',
    b'"\\ud800"',
    b'{"\\udc00": 1}',
]


@pytest.mark.parametrize("raw", INVALID)
def test_every_refusal_is_a_not_json_error_whose_message_starts_with_not_json(
    raw: bytes,
) -> None:
    error = refused(raw)

    assert isinstance(error, InvalidEventError)
    assert isinstance(error, ValueError)
    assert str(error).startswith("not JSON")
    assert len(str(error)) < 200


def test_not_json_is_an_invalid_event_and_a_value_error() -> None:
    assert issubclass(NotJsonError, InvalidEventError)
    assert issubclass(InvalidEventError, ValueError)
