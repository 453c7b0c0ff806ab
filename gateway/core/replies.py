"""What the gateway says to residents (Simplified Chinese, short and natural).

Every resident-facing sentence lives here so that wording is reviewed in one place.
"""

from __future__ import annotations

from gateway.core.lifecycle import Status

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

# Chat channels (WeChat first): what the passive reply says after a first message without text.
ASK_DESCRIPTION_AFTER_MEDIA = "已收到{what}，案件编号 {case}。请用一句话描述问题，并发送位置（点“+”选择“位置”）。"
ASK_DESCRIPTION_AFTER_LOCATION = "已收到位置，案件编号 {case}。请用一句话描述问题，也可以再发几张照片。"
FLOODED = "您提交过于频繁，请稍后再试。"
UNSUPPORTED = "暂不支持这类消息。请发送文字、照片、语音或位置来反映问题。"
_MEDIA_WORDS = {"image": "照片", "voice": "语音", "video": "视频"}


def ask_description(kinds: list[str], case: str) -> str:
    """Ask for the description (and the location) after a photo, voice note, video or location;
    the case number is in every reply from the first one on."""
    if kinds and all(k == "location" for k in kinds):
        return ASK_DESCRIPTION_AFTER_LOCATION.format(case=case)
    what = next((_MEDIA_WORDS[k] for k in kinds if k in _MEDIA_WORDS), "照片")
    return ASK_DESCRIPTION_AFTER_MEDIA.format(what=what, case=case)


# SMS keywords (channels/sms.py turns them into events): short, one segment where possible.
SMS_OPTED_OUT = "您已退订，将不再收到本号码的短信。如需恢复，请回复“订阅”。"
SMS_OPTED_IN = "您已恢复订阅，案件进展会通过短信通知您。回复“退订”可退订。"
SMS_HELP = "城市随手拍：直接发送问题描述和地点即可反映，回复“提交”结束本次反映；回复“退订”不再接收短信。"

# Events that get a passive reply, by channel; the others (unfollow, menu views, location
# reports) get none. A channel's own table comes first, then the common one.
EVENT_REPLIES: dict[str, dict[str, str]] = {
    "*": {"subscribe": WELCOME, "unsupported": UNSUPPORTED},
    "sms": {"unsubscribe": SMS_OPTED_OUT, "subscribe": SMS_OPTED_IN, "help": SMS_HELP},
}


def event_reply(events: list[str], channel: str = "*") -> str | None:
    tables = (EVENT_REPLIES.get(channel, {}), EVENT_REPLIES["*"])
    return next((t[e] for e in events for t in tables if e in t), None)


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


# Evaluation (统一评价): the answer to a 1-5 digit reply after `resolved`, and the web rating page.
RATING_THANKS = "感谢您对案件 {case} 的评价（{score}分）！"
RATING_THANKS_LOW = "感谢您对案件 {case} 的评价（{score}分），我们会督促相关部门改进。"
RATING_NOT_YET = "案件 {case} 尚未处理完毕，处理完毕后再请您评价。"
RATING_BAD_LINK = "评价链接无效或已过期。"
DISPATCHED_TO = "已转交{department}"


def rating_thanks(case: str, score: int) -> str:
    return (RATING_THANKS_LOW if score <= 2 else RATING_THANKS).format(case=case, score=score)


# Reasons a moderator picks when rejecting a report (the console); the resident reads them after
# "未予受理：". A moderator may also write their own.
REJECT_REASONS = (
    "反映内容不清楚，无法核实，请补充具体地点和问题后重新反映",
    "不属于本平台受理范围，请拨打12345热线咨询",
    "该问题已由其他部门依法处理完毕",
    "涉及紧急警情，请直接拨打110、119或120",
)


# What a resident reads about each status (status page, "查询" answers): a short label and one
# sentence. Spam reads like a rejection: a resident is never told their message was junk.
RESIDENT_STATUS: dict[str, tuple[str, str]] = {
    Status.RECEIVED: ("已收到", "我们已收到您的反映，正在登记。"),
    Status.CLASSIFIED: ("已登记", "已登记，正在确定处理部门。"),
    Status.NEEDS_REVIEW: ("人工核实中", "工作人员正在核实问题类别。"),
    Status.READY: ("已受理", "已受理，正在转交处理部门。"),
    Status.DISPATCHED: ("已转交", "已转交处理部门，等待部门接收。"),
    Status.ACCEPTED: ("部门已接收", "处理部门已接收，将安排处理。"),
    Status.IN_PROGRESS: ("处理中", "处理部门正在处理。"),
    Status.RESOLVED: ("已处理", "问题已处理完毕，欢迎评价。"),
    Status.CLOSED: ("已办结", "案件已办结，感谢您的反映。"),
    Status.REJECTED: ("未受理", "很抱歉，该反映未予受理。"),
    Status.SPAM: ("未受理", "该反映内容无法受理。如有需要，请写明具体问题和地点后重新反映。"),
    Status.MERGED: ("已合并处理", "已有相同问题的反映，已并入案件 {target} 一并处理。"),
}


def resident_status(status: str, target: str | None = None) -> tuple[str, str]:
    """The label and the sentence a resident reads for ``status`` (``target``: the case merged into)."""
    label, sentence = RESIDENT_STATUS.get(status, ("处理中", "正在处理。"))
    return label, sentence.format(target=target or "")


# Greetings and progress questions on chat channels (gateway/core/conversation.py).
GREETING = WELCOME + "发送案件编号或“查询”，可查看您反映的案件进度。"
QUERY_NONE = "您还没有反映过问题。发送照片、文字说明和位置即可反映。"
QUERY_NOT_FOUND = "没有找到您反映的案件 {case}，请核对编号。发送“查询”可查看您最近反映的案件。"
QUERY_HEAD = "您最近反映的案件："
QUERY_LINE = "案件 {case}：{label}。{sentence}最新进展：{when} {step}。"


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
