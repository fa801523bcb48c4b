"""gateway.protocols.secrets_mask: key-shaped strings and known keys are masked to the
vendors' display form; other text is left alone."""

from __future__ import annotations

import pytest

from gateway.protocols.secrets_mask import mask_in, mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "Incorrect API key provided: sk-proj-abcdefghij1234.",
            "Incorrect API key provided: sk-proj-...1234.",
        ),
        ("x sk-ant-api03-" + "A" * 30 + "wxyz y", "x sk-ant-...wxyz y"),
        ("key=AIza" + "B" * 35, "key=AIz...BBBB"),
        ("Authorization: Bearer abcdefghijklmnop5678", "Authorization: Bearer abc...5678"),
        ("task-12 is fine, so is skeleton", "task-12 is fine, so is skeleton"),
    ],
)
def test_key_shaped_strings_are_masked(text, masked):
    assert mask_secrets(text) == masked


def test_a_known_key_of_any_shape_is_masked_everywhere_in_a_body():
    body = {"error": {"message": "bad key hunter2hunter2", "details": ["hunter2hunter2"]}}

    assert mask_in(body, ("hunter2hunter2",)) == {
        "error": {"message": "bad key hun...ter2", "details": ["hun...ter2"]}
    }
