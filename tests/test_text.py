import pytest

from harness.errors import InputError
from harness.text import get_normalizer


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("basic", "Hello,  World! It's 'quoted'.", "hello world it's quoted"),
        ("basic", "  ", ""),
        ("none", "Keep  Case, please.", "Keep Case, please."),
        ("whisper-english", "Mr. Smith paid $20 for the colour TV.", "mister smith paid $20 for the color tv"),
        ("whisper-english", "I'm gonna go", "i am going to go"),
    ],
)
def test_normalizers(name, raw, expected):
    assert get_normalizer(name)(raw) == expected


def test_stamp_names_version():
    assert get_normalizer("basic").stamp == "basic@1"
    assert get_normalizer("whisper-english").stamp.startswith("whisper-english@")


def test_unknown_normalizer():
    with pytest.raises(InputError, match="choose one of: whisper-english, basic, none"):
        get_normalizer("fancy")
