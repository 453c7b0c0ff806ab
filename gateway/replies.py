"""What the gateway says to residents (Simplified Chinese, short and natural).

Every resident-facing sentence lives here so that wording is reviewed in one place.
"""

from __future__ import annotations

from gateway.lifecycle import Status

CLOSE_WORDS = frozenset({"提交", "完成", "好了", "结束", "就这些", "submit", "done"})

WELCOME = (
    "您好，欢迎使用“随手拍”！发现路灯不亮、垃圾堆放、违章停车、噪音扰民等问题，"
    "请直接发照片、文字说明和位置，我们会生成案件编号并跟进处理。"
)
ASK_DESCRIPTION_AND_LOCATION = "已收到照片。请用一句话描述问题，并发送位置（点“+”选择“位置”）。"
ASK_LOCATION = "已收到，案件编号 {case}。请再发送一下位置，方便工作人员尽快找到现场；还可以继续补充照片。"
GOT_MORE = "已补充到案件 {case}。全部发完后回复“提交”，或稍后自动提交。"
SUBMITTED = "案件 {case} 已提交，我们会尽快处理，进展会在这里通知您。"
RECEIVED_WEB = "您的诉求已受理，案件编号 {case}。可凭编号查询处理进度。"
DUPLICATE = "该消息已收到，案件编号 {case}，无需重复发送。"
NOTHING_OPEN = "目前没有待提交的反映。请先发送照片或文字描述问题。"

STATUS_NEWS: dict[str, str] = {
    Status.READY: "案件 {case} 已受理，正在转交相关部门。",
    Status.NEEDS_REVIEW: "案件 {case} 已受理，工作人员正在核实分类。",
    Status.DISPATCHED: "案件 {case} 已转交处置部门。",
    Status.ACCEPTED: "案件 {case} 已由处置部门接收。",
    Status.IN_PROGRESS: "案件 {case} 正在处理中。",
    Status.RESOLVED: "案件 {case} 已处理完毕。{note}请回复1-5为本次处理打分（5为非常满意）。",
    Status.CLOSED: "案件 {case} 已办结，感谢您的反映！",
    Status.REJECTED: "很抱歉，案件 {case} 未予受理：{note}",
    Status.MERGED: "您反映的问题已并入案件 {note}一并处理，感谢反映。",
}


def status_news(status: str, case: str, note: str | None = None) -> str | None:
    template = STATUS_NEWS.get(status)
    if template is None:
        return None
    tail = note.strip() if note else ""
    if status == Status.RESOLVED and tail:
        tail = f"处理结果：{tail}。"
    return template.format(case=case, note=tail)


def is_close_word(text: str) -> bool:
    return text.strip().strip("。.!！").lower() in CLOSE_WORDS
