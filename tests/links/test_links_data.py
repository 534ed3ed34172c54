"""runyard.data.links: normalisation, the ExactMatch options, GeoMatch against brute force,
units, sketches and their estimates."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from runyard.data import links as L


def side(values: list, start: int = 1) -> L.Side:
    return L.Side(np.arange(start, start + len(values), dtype=np.int64), values=pa.array(values))


def pairs(result: L.MatchResult) -> set[tuple[int, int]]:
    return set(zip(result.pairs.column("left_id").to_pylist(), result.pairs.column("right_id").to_pylist(),
                   strict=True))


def test_normalisation_is_nfkc_casefold_trim() -> None:
    raw = ["  Ｈｅｌｌｏ ", "STRASSE", "straße", "ﬁne", "", "   ", None, "Ǆ"]
    got = L.normalize(pa.array(raw)).to_pylist()
    assert got == ["hello", "strasse", "strasse", "fine", None, None, None, "d\u017e"]
    assert [L.normalize_text(v) for v in raw] == got


def test_numbers_normalise_as_text() -> None:
    assert L.normalize(pa.array([1, 20, None])).to_pylist() == ["1", "20", None]
    assert L.normalize(pa.array([3.0, 2.5])).to_pylist() == ["3", "2.5"]


def test_exact_match_pairs_and_evidence() -> None:
    left = side([" ACME Corp", "beta", "Gamma", "beta", None], 1)
    right = side(["acme corp", "BETA", "delta"], 100)
    result = L.exact_match(left, right, L.ExactMatch(min_distinct=1))
    assert pairs(result) == {(1, 100), (2, 101), (4, 101)}
    ev = result.evidence
    assert ev["overlap_distinct"] == 2 and ev["left_distinct"] == 3 and ev["right_distinct"] == 3
    assert sorted(ev["samples"]) == ["acme corp", "beta"]
    assert ev["containment_left"] == pytest.approx(2 / 3)


def test_low_cardinality_columns_never_link() -> None:
    flags = side(["true", "false"] * 50)
    other = side(["true", "false"] * 30, 1000)
    result = L.exact_match(flags, other, L.ExactMatch(min_distinct=10))
    assert result.pairs.num_rows == 0 and "min_distinct" in result.evidence["excluded"]["left"]
    # 20 distinct in 1000 rows: variation 0.02
    statuses = side([f"s{i % 20}" for i in range(1000)])
    result = L.exact_match(statuses, side([f"s{i}" for i in range(20)], 5000),
                           L.ExactMatch(min_distinct=5, min_variation=0.1))
    assert result.pairs.num_rows == 0 and "min_variation" in result.evidence["excluded"]["left"]
    ok = L.exact_match(statuses, side([f"s{i}" for i in range(20)], 5000),
                       L.ExactMatch(min_distinct=5, min_variation=0.01))
    assert ok.pairs.num_rows == 1000


@pytest.mark.parametrize("options", [{"min_distinct": 0}, {"min_distinct": 1.5}, {"min_variation": 1.5},
                                     {"min_variation": -0.1}, {"min_distinct": "3"}, {"other": 1}])
def test_exact_options_out_of_range(options: dict) -> None:
    with pytest.raises(L.LinkOptionsError):
        L.ExactMatch.from_options(options)


@pytest.mark.parametrize("options", [{"distance": 0}, {"distance": -1}, {"unit": "ft"}, {"distance": 5000},
                                     {"distance": 2_000_000, "unit": "m"}, {"distance": float("nan")}])
def test_geo_options_out_of_range(options: dict) -> None:
    with pytest.raises(L.LinkOptionsError):
        L.GeoMatch.from_options(options)


def test_type_compatibility() -> None:
    L.check_types("ExactMatch", ["string"], ["int"])
    L.check_types("GeoMatch", ["geo"], ["float", "float"])
    with pytest.raises(L.IncompatibleTypes) as info:
        L.check_types("ExactMatch", ["bool"], ["string"])
    assert "bool" in str(info.value) and "string" in str(info.value)
    with pytest.raises(L.IncompatibleTypes):
        L.check_types("ExactMatch", ["date"], ["int"])
    with pytest.raises(L.IncompatibleTypes):
        L.check_types("GeoMatch", ["string"], ["geo"])


def _points(rng: np.random.Generator, n: int, start: int) -> L.Side:
    return L.Side(np.arange(start, start + n, dtype=np.int64), lat=rng.uniform(46.0, 46.3, n),
                  lon=rng.uniform(7.0, 7.4, n))


@pytest.mark.parametrize(("distance", "unit"), [(1.0, "km"), (750.0, "m"), (0.6, "mi"), (3.0, "km")])
def test_geo_match_is_exact_against_brute_force(distance: float, unit: str) -> None:
    rng = np.random.default_rng(17)
    left, right = _points(rng, 700, 1), _points(rng, 800, 10_000)
    options = L.GeoMatch(distance, unit)
    got = pairs(L.geo_match(left, right, options))
    want = L.brute_force_geo(left, right, options.distance_km)
    assert got == want and len(want) > 100


def test_geo_units_and_edge_cases() -> None:
    assert L.GeoMatch(1, "mi").distance_km == pytest.approx(1.609344)
    assert L.GeoMatch(500, "m").distance_km == pytest.approx(0.5)
    # across the antimeridian and at the pole; a NaN point is never matched
    left = L.Side(np.array([1, 2, 3]), lat=np.array([0.0, 89.9999, np.nan]), lon=np.array([179.9999, 0.0, 0.0]))
    right = L.Side(np.array([7, 8]), lat=np.array([0.0, 89.9999]), lon=np.array([-179.9999, 180.0]))
    assert pairs(L.geo_match(left, right, L.GeoMatch(1, "km"))) == {(1, 7), (2, 8)}
    # 1 km apart along a meridian: in at 1.01 km, out at 0.99 km
    lat2 = 1.0 / 111.19508
    a = L.Side(np.array([1]), lat=np.array([10.0]), lon=np.array([20.0]))
    b = L.Side(np.array([2]), lat=np.array([10.0 + lat2]), lon=np.array([20.0]))
    assert pairs(L.geo_match(a, b, L.GeoMatch(1010, "m"))) == {(1, 2)}
    assert pairs(L.geo_match(a, b, L.GeoMatch(990, "m"))) == set()


def test_sketches_exact_when_small_and_estimated_when_large() -> None:
    a = L.column_sketch(pa.array([f"ID-{i}" for i in range(500)]))
    b = L.column_sketch(pa.array([f"id-{i} " for i in range(250, 1000)]))
    c = L.compare_sketches(a, b)  # both under k distinct values: exact
    assert c["exact"] and c["overlap"] == 250 and c["containment_a"] == 0.5
    small_a = L.column_sketch(pa.array([f"ID-{i}" for i in range(300)]), k=1024)
    small_b = L.column_sketch(pa.array([f"id-{i}" for i in range(150, 450)]), k=1024)
    exact = L.compare_sketches(small_a, small_b)
    assert exact["exact"] and exact["overlap"] == 150 and exact["jaccard"] == pytest.approx(150 / 450)
    assert all(s.startswith("id-") for s in exact["samples"])
    big_a = L.column_sketch(pa.array([f"c{i}" for i in range(100_000)]))
    big_b = L.column_sketch(pa.array([f"c{i}" for i in range(50_000, 200_000)]))
    est = L.compare_sketches(big_a, big_b)
    assert est["jaccard"] == pytest.approx(0.25, abs=0.05)
    assert est["containment_a"] == pytest.approx(0.5, abs=0.1)


def test_candidate_scoring_skips_low_cardinality() -> None:
    opts = L.ExactMatch(min_distinct=10, min_variation=0.01)
    flags = L.column_sketch(pa.array(["yes", "no"] * 500))
    assert L.score_candidate(flags, flags, opts) is None
    keys = L.column_sketch(pa.array([f"k{i}" for i in range(1000)]))
    refs = L.column_sketch(pa.array([f"K{i % 400}" for i in range(5000)]))
    scored = L.score_candidate(keys, refs, opts)
    assert scored is not None and scored["score"] == pytest.approx(1.0) and scored["overlap"] == 400
