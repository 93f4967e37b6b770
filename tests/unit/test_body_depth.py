"""How deep a JSON body nests, measured without parsing it (profilevault.api.problems.nests_deeper_than)."""
import json

import pytest

from profilevault.api.problems import MAX_BODY_DEPTH, nests_deeper_than


def parsed_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(parsed_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(parsed_depth, value), default=0)
    return 0


@pytest.mark.parametrize("text", [
    "{}", "[]", "1", '"[[[["', '{"a": "[[[[{{{{"}', '{"a": "\\"[[[", "b": [[1]]}', '"\\\\"', '{"a\\\\": [{"b": []}]}',
    '[1, [2, [3]], {"x": {"y": [ ]}}]', '{"ä€😀": [["x", "\\u005b"]]}', '[[],[[],[[],[]]]]',
])
def test_depth_agrees_with_the_parser(text):
    # Given a JSON text; When its depth is checked against every limit around it
    depth = parsed_depth(json.loads(text))
    # Then it is deeper than exactly the limits below its parsed depth
    assert [nests_deeper_than(text, limit) for limit in range(6)] == [depth > limit for limit in range(6)]


@pytest.mark.parametrize(("text", "too_deep"), [
    ("[" * MAX_BODY_DEPTH + "]" * MAX_BODY_DEPTH, False),
    ("[" * (MAX_BODY_DEPTH + 1) + "]" * (MAX_BODY_DEPTH + 1), True),
    ('{"a":' * (MAX_BODY_DEPTH + 1) + "1" + "}" * (MAX_BODY_DEPTH + 1), True),
    ("[[]," * MAX_BODY_DEPTH + "1" + "]" * MAX_BODY_DEPTH, True),  # no long run of brackets, still 33 deep
    ("[" * (MAX_BODY_DEPTH + 1), True),  # unclosed: the parser recurses into it all the same
    ("[1]" + "]" * 100, False),  # stray closers: the parser stops at the first
])
def test_the_limit_is_exact(text, too_deep):
    assert nests_deeper_than(text, MAX_BODY_DEPTH) is too_deep
