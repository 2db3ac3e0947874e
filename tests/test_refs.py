import pytest

from gptstore.errors import InvalidReference
from gptstore.refs import parse, parse_repo_id

DIGEST = "ab" * 32


@pytest.mark.parametrize("text,namespace,name,tag,digest", [
    ("acme/poet", "acme", "poet", "latest", None),
    ("acme/poet:1.2.0", "acme", "poet", "1.2.0", None),
    ("a_b/c.d-e:v2", "a_b", "c.d-e", "v2", None),
    (f"acme/poet@sha256:{DIGEST}", "acme", "poet", "latest", DIGEST),
    (f"acme/poet:1.0.0@sha256:{DIGEST}", "acme", "poet", "1.0.0", DIGEST),
])
def test_parse_valid(text, namespace, name, tag, digest):
    ref = parse(text)
    assert (ref.namespace, ref.name, ref.tag, ref.digest) == (namespace, name, tag, digest)
    assert parse(str(ref)) == ref


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
        parse(text)
    message = str(info.value)
    assert reason in message
    assert "namespace/name[:tag][@sha256:" in message
    assert info.value.exit_code == 2


def test_digest_wins_and_str_round_trip():
    ref = parse(f"acme/poet@sha256:{DIGEST}")
    assert str(ref) == f"acme/poet@sha256:{DIGEST}"
    assert parse("acme/poet").repo_id == "acme/poet"


def test_parse_repo_id_refuses_tags():
    assert parse_repo_id("acme/poet").name == "poet"
    with pytest.raises(InvalidReference):
        parse_repo_id("acme/poet:1.0.0")
