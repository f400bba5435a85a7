import pytest

from evidencekit.errors import BundleError
from evidencekit.format import bag


@pytest.mark.parametrize("path", ["a b", "100%", "line\nbreak", "cr\rx", "%0A literal", "ü/ß"])
def test_path_encoding_round_trips(path):
    encoded = bag.encode_path(path)
    assert "\n" not in encoded and "\r" not in encoded
    assert bag.decode_path(encoded) == path


def test_manifest_line_matches_sha256sum_format():
    assert bag.manifest_line("ab" * 32, "data/x y") == ("ab" * 32 + "  data/x y\n").encode()


def test_parse_manifest_rejects_defects():
    good = bag.manifest_line("0" * 64, "data/a")
    assert bag.parse_manifest(good, "m") == {"data/a": "0" * 64}
    for bad in (good + good, b"xyz  data/a\n", good[:-1], bag.manifest_line("0" * 64, "/etc/x"),
                bag.manifest_line("0" * 64, "data/../../x"), b"0" * 64 + b"  data/%41\n"):
        with pytest.raises(BundleError):
            bag.parse_manifest(bad, "m")


def test_bag_info_folds_multiline_values():
    assert bag.bag_info([("External-Description", "one\ntwo")]) == \
        b"External-Description: one\n  two\n"
