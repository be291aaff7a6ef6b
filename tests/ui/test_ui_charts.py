"""The server-drawn SVG charts: well-formed, escaped, and sensible at the edges (one point, one
elite, no interval)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from evolve.ui import charts

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on markup that is not well-formed


def test_heatmap_labels_and_tooltips_are_escaped() -> None:
    cells = [[charts.HeatCell(1.5, 7, "<b>x</b>"), charts.HeatCell(None, None, "empty & <i>")]]
    svg = charts.heatmap("<tile>", ["<1>", "2"], "warps & co", ["4"], cells)
    root = parse(svg)
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "<tile>" in texts and "<1>" in texts and "warps & co" in texts
    assert [t.text for t in root.iter(f"{NS}title")] == ["<b>x</b>", "empty & <i>"]
    links = [a.get("href") for a in root.iter(f"{NS}a")]
    assert links == ["/programs/7"]


def test_a_single_elite_gets_a_colour_and_the_legend_its_value() -> None:
    svg = charts.heatmap("x", ["a"], None, [""], [[charts.HeatCell(1.25, 3, "a")]])
    root = parse(svg)
    filled = [r for r in root.iter(f"{NS}rect") if "filled" in (r.get("class") or "")]
    assert len(filled) == 1 and filled[0].get("fill") in charts.RAMP
    assert "1.250x to 1.250x" in svg


def test_a_line_chart_draws_one_point_and_says_when_empty() -> None:
    one = parse(charts.line_chart("best", [(16, 1.5)], x_label="evaluations"))
    assert len(list(one.iter(f"{NS}circle"))) == 1
    assert "nothing recorded yet" in charts.line_chart("best", [], x_label="evaluations")


def test_shape_bars_draw_whiskers_only_where_an_interval_exists() -> None:
    bars = [charts.ShapeBar("<B4>", 300.0, 290.0, 310.0, 200.0, 1.5), charts.ShapeBar("B2", 100.0, None, None, 200.0, 0.5)]
    root = parse(charts.shape_chart(bars))
    assert len([g for g in root.iter(f"{NS}g") if g.get("class") == "interval"]) == 1
    assert len([r for r in root.iter(f"{NS}rect") if r.get("class") == "bar candidate"]) == 2
    assert "<B4>" in [t.text for t in root.iter(f"{NS}text")]
