"""Moderator actions through the real app: state, history with the moderator's name, labels, residents."""

from __future__ import annotations

from sqlalchemy import select

from gateway import keys
from gateway.core.reviews import export_examples
from gateway.db import History, LabeledExample, ModeratorNote, Notification, Report
from tests.console.conftest import login, report, seed, seed_sms

JSON = {"Accept": "application/json"}


async def act(client, csrf, case, action, **fields):
    return await client.post(f"/console/reports/{case}/actions/{action}", data={"_csrf": csrf, **fields}, headers=JSON)


async def history(client, case):
    async with client.app[keys.DB].session() as s:
        rid = await s.scalar(select(Report.id).where(Report.case_number == case))
        return (await s.scalars(select(History).where(History.report_id == rid).order_by(History.id))).all()


async def examples(client):
    async with client.app[keys.DB].session() as s:
        return (await s.scalars(select(LabeledExample).order_by(LabeledExample.id))).all()


async def test_confirm_sends_to_dispatch_and_stores_a_labeled_example(app_client, users, runner):
    case = await seed(app_client, runner, "路灯不亮，电话13812345678")
    csrf = await login(app_client, "mod1")
    resp = await act(app_client, csrf, case, "confirm")
    assert resp.status == 200, await resp.text()
    r = await report(app_client, case)
    assert r.status == "ready" and r.category_code == "0102" and r.category_set_by == "moderator"
    last = (await history(app_client, case))[-1]
    assert (last.actor, last.action, last.from_status, last.to_status) == (
        "moderator:mod1",
        "confirm",
        "needs_review",
        "ready",
    )
    [ex] = await examples(app_client)
    assert (ex.label, ex.model_label, ex.source, ex.moderator) == ("0102", "0102", "confirmed", "mod1")
    assert "13812345678" not in ex.text and "138****5678" in ex.text  # no personal data in training data


async def test_change_category_relabels_and_takes_the_taxonomy_priority(app_client, users, runner):
    case = await seed(app_client, runner, "路灯旁边垃圾堆了好几天")  # the fake says 0102 (路灯)
    csrf = await login(app_client, "mod1")
    resp = await act(app_client, csrf, case, "category", category="1003")
    assert resp.status == 200, await resp.text()
    r = await report(app_client, case)
    assert (r.status, r.category_code, r.category_parent, r.category_name) == (
        "ready",
        "1003",
        "10",
        "燃气泄漏与燃气管道破裂",
    )
    assert r.priority == "P1" and r.category_confidence == 1.0
    [ex] = await examples(app_client)
    assert (ex.label, ex.model_label, ex.source) == ("1003", "0102", "changed")
    assert (await history(app_client, case))[-1].data == {"from": "0102", "to": "1003"}
    bad = await act(app_client, csrf, await seed(app_client, runner, "路灯"), "category", category="9999")
    assert bad.status == 400 and "没有这个分类" in (await bad.json())["error"]


async def test_merge_links_the_duplicate_and_tells_the_resident(app_client, users, runner):
    target = await seed(app_client, runner, "民治大道井盖缺失")
    dup = await seed_sms(app_client, runner, "民治大道井盖没了很危险")
    csrf = await login(app_client, "mod1")
    assert (await act(app_client, csrf, dup, "merge", target=dup)).status == 400  # not into itself
    resp = await act(app_client, csrf, dup, "merge", target=target.lower())
    assert resp.status == 200, await resp.text()
    r = await report(app_client, dup)
    assert r.status == "merged" and r.duplicate_of == target
    assert (await history(app_client, target))[-1].action == "merged_in"
    async with app_client.app[keys.DB].session() as s:
        texts = (await s.scalars(select(Notification.text).where(Notification.report_id == r.id))).all()
    assert any(target in t and "并入" in t for t in texts), texts


async def test_reject_needs_a_reason_which_the_resident_receives(app_client, users, runner):
    case = await seed_sms(app_client, runner, "你好在吗")
    csrf = await login(app_client, "mod1")
    assert (await act(app_client, csrf, case, "reject")).status == 400
    reason = "反映内容不清楚，无法核实"
    assert (await act(app_client, csrf, case, "reject", reason=reason)).status == 200
    r = await report(app_client, case)
    assert r.status == "rejected" and (await history(app_client, case))[-1].note == reason
    async with app_client.app[keys.DB].session() as s:
        texts = (await s.scalars(select(Notification.text).where(Notification.report_id == r.id))).all()
    assert any(reason in t for t in texts), texts


async def test_spam_priority_note_and_dispatch(app_client, users, runner):
    spam = await seed(app_client, runner, "加微信领红包")
    case = await seed(app_client, runner, "垃圾满了没人清")
    csrf = await login(app_client, "mod1")
    assert (await act(app_client, csrf, spam, "spam")).status == 200
    assert (await report(app_client, spam)).status == "spam"
    assert (await act(app_client, csrf, case, "priority", priority="p1")).status == 200
    r = await report(app_client, case)
    assert r.priority == "P1" and r.urgent and r.status == "needs_review"
    assert (await act(app_client, csrf, case, "priority", priority="P9")).status == 400
    assert (await act(app_client, csrf, case, "note", note="已电话联系物业")).status == 200
    async with app_client.app[keys.DB].session() as s:
        [note] = (await s.scalars(select(ModeratorNote))).all()
    assert (note.author, note.text) == ("mod1", "已电话联系物业")
    # The note's text stays out of the public report (its history notes are public).
    public = await (await app_client.get(f"/api/v1/reports/{case}")).json()
    assert "已电话联系物业" not in str(public)
    assert (await act(app_client, csrf, case, "dispatch")).status == 200
    assert (await report(app_client, case)).status == "ready"
    assert not await examples(app_client)  # dispatching vouches for nothing: no labeled example
    actions = [(h.actor, h.action) for h in await history(app_client, case) if h.actor.startswith("moderator")]
    assert actions == [("moderator:mod1", a) for a in ("priority", "note", "dispatch")]


async def test_a_handled_report_is_refused_with_409(app_client, users, runner):
    case = await seed(app_client, runner, "路灯坏了")
    csrf = await login(app_client, "mod1")
    assert (await act(app_client, csrf, case, "spam")).status == 200
    for action, fields in (("confirm", {}), ("reject", {"reason": "不清楚"}), ("note", {"note": "x"})):
        resp = await act(app_client, csrf, case, action, **fields)
        assert resp.status == 409, action
    unclassified = await seed(app_client, runner, "你好")
    resp = await act(app_client, csrf, unclassified, "confirm")
    assert resp.status == 400 and "请先选择分类" in (await resp.json())["error"]
    assert (await act(app_client, csrf, "ZW20990101000001", "spam")).status == 404
    assert (await act(app_client, csrf, case, "launch")).status == 404


async def test_form_posts_without_javascript_redirect_back(app_client, users, runner):
    case = await seed(app_client, runner, "路灯坏了")
    csrf = await login(app_client, "mod1")
    resp = await app_client.post(
        f"/console/reports/{case}/actions/confirm",
        data={"_csrf": csrf, "next": f"/console/reports/{case}"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/console/reports/{case}"


async def test_export_examples_writes_text_label_csv(app_client, users, runner, tmp_path):
    a = await seed(app_client, runner, "路灯不亮")
    b = await seed(app_client, runner, '垃圾桶满了, "很臭"\n第二行')
    csrf = await login(app_client, "mod1")
    await act(app_client, csrf, a, "confirm")
    await act(app_client, csrf, b, "category", category="0302")
    out = tmp_path / "reviews" / "examples.csv"
    assert await export_examples(app_client.app[keys.DB], out) == 2
    import csv

    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"text": "路灯不亮", "label": "0102"}, {"text": '垃圾桶满了, "很臭"\n第二行', "label": "0302"}]
