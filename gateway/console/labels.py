"""The console's Chinese names for statuses, channels, history actions, media and roles.

Templates read them as globals (``statuses``, ``channel_names``, ``history_actions``,
``media_kinds``, ``media_states``, ``roles``); the stored values stay English codes.
"""

from __future__ import annotations

STATUSES = {
    "received": "已接收",
    "classified": "已分类",
    "needs_review": "待审核",
    "ready": "待派遣",
    "dispatched": "已派遣",
    "accepted": "部门已接收",
    "in_progress": "处理中",
    "resolved": "已处理",
    "closed": "已办结",
    "rejected": "已退回",
    "spam": "无效信息",
    "merged": "已合并",
}
CHANNELS = {"wechat": "微信", "sms": "短信", "weibo": "微博", "web": "网上民声", "open311": "Open311"}
HISTORY_ACTIONS = {
    "received": "收到反映",
    "message": "补充消息",
    "session_closed": "提交",
    "classified": "自动分类",
    "classify": "自动分类",
    "confirm": "确认分类",
    "category": "修改分类",
    "priority": "调整优先级",
    "merge": "合并",
    "merged_in": "并入案件",
    "spam": "标记无效信息",
    "reject": "退回",
    "note": "备注",
    "dispatch": "转派遣",
    "delivered": "已送达派遣系统",
    "callback": "派遣系统回传",
    "rated": "居民评价",
    "media_retry": "重新下载附件",
    "recategorize": "修改分类",
    "status": "状态变更",
}
ACTORS = {"system": "系统", "dispatch": "派遣系统", "resident": "居民"}
MEDIA_KINDS = {"image": "照片", "voice": "语音", "video": "视频"}
MEDIA_STATES = {"pending": "下载中", "stored": "已保存", "failed": "下载失败"}
LOCATION_SOURCES = {"gps": "定位", "text": "文字", "geocoder": "地址解析", "contact": "最近定位"}
ACCOUNT_ACTIONS = {"create": "创建", "disable": "停用", "enable": "启用", "password": "重置密码", "role": "改角色"}
ROLES = {"moderator": "审核员", "admin": "管理员"}
SET_BY = {"model": "模型", "rule": "规则", "moderator": "人工", "placeholder": "未分类"}


def actor(value: str) -> str:
    """``moderator:alice`` → ``审核员 alice``; a resident's channel id → 居民."""
    if value in ACTORS:
        return ACTORS[value]
    if value.startswith("moderator:"):
        return f"审核员 {value.removeprefix('moderator:')}"
    return "居民"


# The system's own history notes (gateway/core/triage.py); moderators' and dispatch's notes are shown as written.
SYSTEM_NOTES = {
    "urgent": "紧急案件，直接派遣",
    "low confidence": "分类置信度低",
    "confident": "分类可信",
    "idle timeout": "超时自动提交",
    "closed": "已提交",
}


def note_text(note: str | None) -> str:
    if not note:
        return ""
    if note.startswith("possible duplicate of "):
        return "疑似重复：" + note.removeprefix("possible duplicate of ")
    return SYSTEM_NOTES.get(note, note)


GLOBALS = {
    "statuses": STATUSES,
    "channel_names": CHANNELS,
    "history_actions": HISTORY_ACTIONS,
    "media_kinds": MEDIA_KINDS,
    "media_states": MEDIA_STATES,
    "roles": ROLES,
    "account_actions": ACCOUNT_ACTIONS,
    "location_sources": LOCATION_SOURCES,
    "set_by_names": SET_BY,
    "actor_name": actor,
    "note_text": note_text,
}
