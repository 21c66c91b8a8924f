"""`spillover simulate`: JSON and table output, and bad snapshots answered with exit 2 and the place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extender.cli.main import main

SNAPSHOTS = Path(__file__).resolve().parents[3] / "hack" / "snapshots"


@pytest.mark.parametrize("solver", ["lp", "cpsat", "greedy", "auto"])
def test_json_output_has_the_documented_shape(solver: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["simulate", "--snapshot", str(SNAPSHOTS / "two-peers.yaml"), "--solver", solver, "--output", "json"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert {"placements", "unplaced", "cost_per_hour", "solver", "solve_ms"} <= doc.keys()
    assert set(doc["placements"][0]) == {"pod", "cluster", "node"}
    assert doc["unplaced"] == [{"pod": "shop/huge", "reason": doc["unplaced"][0]["reason"]}]
    assert "more than any admitting node" in doc["unplaced"][0]["reason"]
    assert len(doc["placements"]) == 20
    # The cheaper peer (west) is full before anything goes east, except what hints send there.
    assert sum(p["cluster"] == "west" for p in doc["placements"]) >= 12


def test_table_output_shows_placements_utilisation_and_advice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--snapshot", str(SNAPSHOTS / "gpu-gang-tiers.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ml/trainer-0" in out and "SCALE-UP ADVICE" in out and "CPU BEFORE" in out
    assert "placed 35, unplaced 6" in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "clusters[1].nodes[0].capacity.cpu: quantity 'x' does not parse"),
        (
            "clusters: [{name: a, nodes: [{name: n, capacity: {cpu: 1}, colour: red}]}]",
            "clusters[0].nodes[0]: object contains unknown field `colour`",
        ),
        (
            "clusters: [{name: a, nodes: [{name: n, capacity: {cpu: 1}, used: {cpu: 2}}]}]",
            "clusters[0].nodes[0].used.cpu: 2 is more than the node's capacity",
        ),
        ("clusters: [{name: a}, {name: a}]", "clusters[1].name: 'a' is already clusters[0]"),
        (
            "clusters: [{name: a}]\npods: [{name: p, requests: {cpu: 1}, annotations: {spillover.io/prefer: 'a=x'}}]",
            "pods[0].annotations: annotation spillover.io/prefer='a=x' is invalid",
        ),
        (
            "clusters: [{name: a}]\npods: [{name: p, requests: {cpu: 1}, count: 'two'}]",
            "pods[0].count: expected `int`, got `str`",
        ),
        ("clusters: [{name: a}]\nlimits: [{cluster: b, maxPods: 1}]", "limits[0].cluster: 'b' is not a peer"),
        ("clusters: [\n  {name: a", "line 2"),
        ("- just a list", "snapshot: expected a mapping"),
    ],
)
def test_bad_snapshot_exits_2_naming_the_place(
    content: str | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = SNAPSHOTS / "bad-quantity.yaml"
    if content is not None:
        path = tmp_path / "snap.yaml"
        path.write_text(content)
    assert main(["simulate", "--snapshot", str(path)]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_missing_snapshot_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--snapshot", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_simulate_help_points_at_documentation_that_exists(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    assert "docs/planner.md" not in text and "hack/snapshots/" in text
    assert "### `spillover simulate`" in (Path(__file__).resolve().parents[3] / "README.md").read_text()
