import pytest

from gptstore.errors import InvalidReference
from gptstore.refs import SEMVER, check_segment, is_digest, is_semver, parse_reference, parse_repo_id, segment_problem

DIGEST = "ab" * 32


@pytest.mark.parametrize("text,namespace,name,tag,digest", [
    ("acme/poet", "acme", "poet", "latest", None),
    ("acme/poet:1.2.0", "acme", "poet", "1.2.0", None),
    ("a_b/c.d-e:v2", "a_b", "c.d-e", "v2", None),
    (f"acme/poet@sha256:{DIGEST}", "acme", "poet", "latest", DIGEST),
    (f"acme/poet:1.0.0@sha256:{DIGEST}", "acme", "poet", "1.0.0", DIGEST),
])
def test_parse_valid(text, namespace, name, tag, digest):
    ref = parse_reference(text)
    assert (ref.namespace, ref.name, ref.tag, ref.digest) == (namespace, name, tag, digest)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("poet", "exactly two segments"),
    ("a/b/c", "exactly two segments"),
    ("acme/po et", "letters, digits"),
    ("acme/po--et", "'--'"),
    ("acme/po..et", "'--' or '..'"),
    ("-acme/poet", "start and end"),
    ("acme/" + "x" * 97, "longer than 96"),
    ("acme/poet:", "tag"),
    ("acme/poet@md5:abc", "sha256:"),
    ("acme/poet@sha256:ABC", "64 lowercase hex"),
    ("acme/poet.git", ".git"),
])
def test_parse_invalid_shows_expected_form(text, reason):
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    message = str(info.value)
    assert reason in message
    assert "namespace/name[:tag][@sha256:" in message
    assert info.value.exit_code == 2


def test_digest_wins_and_str_round_trip():
    ref = parse_reference(f"acme/poet@sha256:{DIGEST}")
    assert str(ref) == f"acme/poet@sha256:{DIGEST}"
    assert parse_reference("acme/poet").repo_id == "acme/poet"


def test_parse_repo_id_refuses_tags():
    assert parse_repo_id("acme/poet").name == "poet"
    with pytest.raises(InvalidReference):
        parse_repo_id("acme/poet:1.0.0")


# -- issue 11: names are checked with fullmatch; `$` once let a trailing newline through ----------

@pytest.mark.parametrize("text", [
    "acme/poet\n", "acme\n/poet", "acme/poet:1.0.0\n", f"acme/poet@sha256:{DIGEST}\n",
    "acme/poet:v1\x00", "acme/po\tet", "\tacme/poet", "acme/poet\r\n", "acme/poet\u2028", "acme/\x1b[2Jpoet",
])
def test_control_characters_and_trailing_newlines_refused(text):
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    message = str(info.value)
    assert "\n" not in message and "\x00" not in message and "\x1b" not in message


@pytest.mark.parametrize("segment", ["evil\n", "evil\r", " evil", "evil ", "ev\nil", "evil\x00", ""])
def test_check_segment_uses_fullmatch(segment):
    """The server checks new repo and user names with check_segment: `bob/evil\\n` must not pass."""
    with pytest.raises(InvalidReference):
        check_segment(segment, f"bob/{segment}", "name")
    assert segment_problem(segment, "name")


def test_semver_and_digest_helpers_are_exact():
    assert is_semver("1.2.0") and is_semver("1.0.0-rc.1+build.5")
    assert not is_semver("1.2.0\n") and not is_semver(" 1.2.0") and not is_semver(1)
    assert SEMVER.match("1.2.0\n") is None  # callers elsewhere still use .match: the pattern is \A...\Z
    assert is_digest(DIGEST) and not is_digest(DIGEST + "\n") and not is_digest(DIGEST.upper())


def test_surrounding_spaces_of_a_typed_reference_are_forgiven():
    assert parse_reference("  acme/poet:1.0.0 ").tag == "1.0.0"


def test_long_and_odd_inputs_give_short_errors():
    with pytest.raises(InvalidReference) as info:
        parse_reference("acme/" + "x" * 100_000)
    assert len(str(info.value)) < 300
    with pytest.raises(InvalidReference) as info:
        parse_reference("acme/poet:" + "t" * 500)
    assert len(str(info.value)) < 400
    with pytest.raises(InvalidReference):
        parse_reference(10**5000)  # type: ignore[arg-type]  # str() of it would raise ValueError
