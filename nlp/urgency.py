"""Emergency detection: rules that flag a report P1 whatever the classifier thinks.

A resident who smells gas or sees a fire may word it in a way the model has never seen; these
patterns run on the normalized text and fire independently of the category. A rule names the
subcategory it implies (used when the model is unsure) or none (injury, people trapped: the
category stays the model's, only the priority changes). A pattern does not fire when its
clause (the text since the last punctuation, at most ``LOOK_BACK`` characters) negates it
("没有煤气味", "不是着火", "没有人受伤") or makes it hypothetical or a worry ("万一着火",
"如果发生火灾", "担心着火", "防止火灾"), or when it is followed by "隐患" and the like (a hazard,
not an emergency: moderators and the 12 category handle those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class UrgencyRule:
    name: str
    pattern: re.Pattern[str]
    code: str | None  # implied subcategory in the default taxonomy, if any


def _r(name: str, pattern: str, code: str | None) -> UrgencyRule:
    return UrgencyRule(name, re.compile(pattern), code)


RULES: tuple[UrgencyRule, ...] = (
    _r(
        "gas",
        r"煤气味|燃气味|天然气味|液化气味|煤气的味|燃气的味|天然气的味|"
        r"(?:煤气|燃气|天然气|液化气)(?:管道?)?(?:泄漏|泄露|漏气|爆)|漏气|"
        r"闻到.{0,4}(?:煤气|燃气|天然气)",
        "1003",
    ),
    _r("fire", r"着火|起火|失火|火灾|火势|烧起来|大火|冒黑烟|浓烟滚滚|火光|火苗", "1010"),
    _r("explosion", r"爆炸|炸了", "1010"),
    _r("collapse", r"路面塌陷|地面塌陷|塌陷|地陷|塌方|坍塌|倒塌|塌了", "1001"),
    _r("trapped", r"被困|困在|困人|关在电梯|卡在电梯|出不来", None),
    _r(
        "injury",
        r"受伤|流血|伤人|砸伤|摔伤|撞伤|烫伤|砸到人|晕倒|昏迷|"
        r"不省人事|触电|溺水|落水|有人掉|生命危险|出人命",
        None,
    ),
    _r("burst_main", r"爆管|水管爆|管道爆|水管破裂.{0,6}(?:喷|冒)", "1002"),
    _r("live_wire", r"电线.{0,4}(?:掉|垂|落)(?:下来|地上|在地)|高压线.{0,4}(?:断|掉|落)", "1008"),
)

LOOK_BACK = 8
_CLAUSE_END_RE = re.compile(r"[，,。.！!？?；;：:\s]")
_NEGATION_RE = re.compile(r"没有|没|未|无|不是|并非|不再|不会|不要|别")
_HYPOTHETICAL_RE = re.compile(
    r"万一|如果|假如|假设|要是|一旦|倘若|若是|若有|防止|预防|避免|以免|以防|谨防|防范|担心|害怕|生怕|恐怕|"
    r"怕|可能|容易|易引发|会不会|有没有|是否"
)
_NOT_EMERGENCY_AFTER_RE = re.compile(
    r"^(?:隐患|风险|危险隐患|的隐患|的风险|的危险|的可能|演练|演习|预案|知识|安全检查|宣传|怎么办|事故隐患)"
)


def _clause_before(text: str, start: int) -> str:
    """The text before ``start`` back to the last punctuation, at most ``LOOK_BACK`` characters."""
    window = text[max(0, start - LOOK_BACK) : start]
    ends = [m.end() for m in _CLAUSE_END_RE.finditer(window)]
    return window[ends[-1] :] if ends else window


@dataclass(frozen=True)
class UrgencyHit:
    rule: str
    matched: str
    code: str | None


def detect_urgency(normalized_text: str) -> list[UrgencyHit]:
    """All emergency rules that fire on an already normalized text (see ``segment.normalize``)."""
    hits: list[UrgencyHit] = []
    for rule in RULES:
        for m in rule.pattern.finditer(normalized_text):
            before = _clause_before(normalized_text, m.start())
            after = normalized_text[m.end() : m.end() + 4]
            if _NEGATION_RE.search(before) or _HYPOTHETICAL_RE.search(before) or _NOT_EMERGENCY_AFTER_RE.match(after):
                continue
            hits.append(UrgencyHit(rule.name, m.group(0), rule.code))
            break
    return hits
