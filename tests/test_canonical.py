import pytest

from evidencekit import canonical
from evidencekit.errors import BundleError


def test_round_trip_and_key_order():
    data = canonical.dumps({"b": 1, "a": ["ü", None, True]})
    assert data == '{"a":["ü",null,true],"b":1}\n'.encode()
    assert canonical.loads(data, "x") == {"a": ["ü", None, True], "b": 1}


@pytest.mark.parametrize("text", [b'{"a": 1}\n', b'{"b":1,"a":2}\n', b'{"a":1}', b'{"a":1.5}\n',
                                  b"[1]\n", b"\xff\n", b'{"a":NaN}\n'])
def test_non_canonical_or_invalid_is_rejected(text):
    with pytest.raises(BundleError):
        canonical.loads(text, "doc")


def test_floats_are_refused_when_writing():
    with pytest.raises(TypeError):
        canonical.dumps({"a": 0.5})


@pytest.mark.parametrize("document", [
    {"b": 1, "a": "ü\n\"\\\x00\x1f\u2028", "c": None, "d": True, "e": False, "f": -(10**30)},
    {"changes": ["x", "ÿ"], "xattrs": {"user.b": "Qg==", "user.a": ""}, "empty": {}, "list": []},
    {},
])
def test_typed_documents_are_encoded_as_dumps_encodes_them(document):
    assert canonical.dumps_typed(document) + b"\n" == canonical.dumps(document)
