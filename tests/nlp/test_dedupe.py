import time
from datetime import datetime, timedelta

from nlp.dedupe import DedupeIndex, DedupeItem, find_duplicates, haversine_m, text_similarity

T0 = datetime(2025, 5, 1, 8, 0)


def item(i, text, lat=22.65, lng=114.02, minutes=0):
    return DedupeItem(str(i), text, lat, lng, T0 + timedelta(minutes=minutes))


def test_same_problem_reworded_is_found_first():
    new = item("new", "民治大道和人民路路口的井盖不见了，很危险", minutes=60)
    open_items = [
        item(1, "民治大道人民路路口井盖丢了，晚上很危险"),
        item(2, "小区里垃圾堆了好几天没人清理"),
        item(3, "民治大道人民路路口的路灯坏了"),
    ]
    result = find_duplicates(new, open_items)
    assert result and result[0][0] == "1"
    assert "2" not in [r[0] for r in result]


def test_time_window_and_distance_exclude():
    text = "民治大道人民路路口井盖丢了"
    new = item("new", text)
    far = item(1, text, lat=22.70)  # ~5.5 km north
    old = item(2, text, minutes=-60 * 24 * 10)
    no_loc = DedupeItem("3", text, None, None, T0)
    ids = [r[0] for r in find_duplicates(new, [far, old, no_loc])]
    assert ids == ["3"]
    assert haversine_m(22.65, 114.02, 22.70, 114.02) > 5000


def test_closer_scores_higher():
    text = "楼下的路灯不亮了"
    new = item("new", text)
    near = item(1, text, lat=22.6501)
    farther = item(2, text, lat=22.652)
    assert [r[0] for r in find_duplicates(new, [farther, near])] == ["1", "2"]


def test_similarity_bounds():
    assert text_similarity("路灯坏了", "路灯坏了") > 0.99
    assert text_similarity("路灯坏了", "工资拖欠") == 0


def test_fast_against_thousands_of_open_cases():
    idx = DedupeIndex(
        item(i, f"第{i}号楼下的垃圾没人清理，已经第{i % 7}天了，气味很大", minutes=i % 300) for i in range(3000)
    )
    t = time.perf_counter()
    res = idx.query(item("new", "第5号楼下的垃圾没人清理，气味很大"))
    assert time.perf_counter() - t < 1.0
    assert res[0][0] == "5"


def test_the_spatial_buckets_find_what_comparing_every_item_finds():
    """The index compares a new item only with the cells within the distance (and the items
    without coordinates); the answers are those of checking every open item."""
    import random

    from nlp.dedupe import _close_enough, _cosine, _vector

    rnd = random.Random(7)
    texts = ["民治大道人民路路口井盖丢了", "民治大道人民路井盖丢了很危险", "小区里垃圾没人清理", "路灯坏了晚上很黑"]
    items = [
        DedupeItem(
            str(i),
            rnd.choice(texts),
            None if i % 17 == 0 else 22.65 + rnd.uniform(-0.02, 0.02),
            None if i % 17 == 0 else 114.02 + rnd.uniform(-0.02, 0.02),
            T0,
        )
        for i in range(400)
    ]
    index = DedupeIndex(items)
    for new in items[:60]:
        expected = set()
        for other in items:
            ok, _ = _close_enough(new, other, 300.0)
            if other.id != new.id and ok and _cosine(_vector(new.text), _vector(other.text)) >= 0.5:
                expected.add(other.id)
        assert {case for case, _ in index.query(new)} == expected
