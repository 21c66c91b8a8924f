from __future__ import annotations

import pytest

from extender.hints import HintError, Policy, parse_hints


def test_no_annotations_means_local_first_everywhere() -> None:
    hints = parse_hints(None)
    assert hints.policy is Policy.LOCAL_FIRST
    assert hints.allows("east") and hints.allows("west")


def test_allow_and_avoid_lists_and_cost_ceiling_restrict_peers() -> None:
    hints = parse_hints(
        {"spillover.io/clusters": "west, east", "spillover.io/avoid-clusters": "east", "spillover.io/max-cost": "1.5"}
    )
    assert hints.allows("west") and not hints.allows("east") and not hints.allows("north")
    assert hints.allows_cost(1.5) and not hints.allows_cost(1.6)


def test_local_only_allows_no_peer() -> None:
    assert not parse_hints({"spillover.io/policy": "local-only"}).allows("east")


def test_prefer_weights_parse() -> None:
    assert dict(parse_hints({"spillover.io/prefer": "west=3,east=1"}).prefer) == {"west": 3, "east": 1}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("spillover.io/policy", "local-last"),
        ("spillover.io/clusters", "West"),
        ("spillover.io/clusters", ""),
        ("spillover.io/prefer", "west"),
        ("spillover.io/prefer", "west=-1"),
        ("spillover.io/prefer", "a=1,a=2"),
        ("spillover.io/max-cost", "cheap"),
        ("spillover.io/max-cost", "-1"),
        ("spillover.io/max-cost", "nan"),
        ("spillover.io/max-cost", "1e3"),
        ("spillover.io/max-cost", "inf"),
        ("spillover.io/failover", "sometimes"),
        ("spillover.io/gang-size", "3"),
        ("spillover.io/repatriate", "sometimes"),
        ("spillover.io/repatriate-after", "5 minutes"),
        ("spillover.io/repatriate-after", "8d"),
        ("spillover.io/repatriate-after", "9999h"),
        ("spillover.io/repatriate-max-in-flight", "0"),
    ],
)
def test_bad_hint_is_refused_naming_annotation_value_and_accepted_forms(key: str, value: str) -> None:
    with pytest.raises(HintError) as err:
        parse_hints({key: value})
    message = str(err.value)
    assert key in message and repr(value) in message and "expected" in message


def test_avoiding_every_allowed_cluster_is_refused() -> None:
    with pytest.raises(HintError, match="avoid-clusters"):
        parse_hints({"spillover.io/clusters": "east", "spillover.io/avoid-clusters": "east"})


def test_gang_needs_a_size() -> None:
    with pytest.raises(HintError, match="gang-size"):
        parse_hints({"spillover.io/gang": "train"})
    hints = parse_hints({"spillover.io/gang": "train", "spillover.io/gang-size": "4"})
    assert (hints.gang, hints.gang_size) == ("train", 4)


def test_max_cost_is_a_plain_decimal() -> None:
    for value, cost in (("1.5", 1.5), (" 2 ", 2.0), (".5", 0.5), ("3.", 3.0), ("0", 0.0)):
        assert parse_hints({"spillover.io/max-cost": value}).max_cost == cost


def test_prefer_names_its_bad_form_before_a_repeat_and_the_first_name_given_twice() -> None:
    with pytest.raises(HintError, match=r"weights are whole numbers 0-100\)$"):
        parse_hints({"spillover.io/prefer": "a=1,a=2,b=x"})
    with pytest.raises(HintError, match="'a' appears twice"):
        parse_hints({"spillover.io/prefer": "a=1,b=2,b=3,a=4"})
