"""Amounts in words, in the invoice currency, for en, es, ar (num2words) and zh (here).

num2words (0.5.14) has no Chinese, and its Arabic currency mode always says riyal; so the
integer part is spelled by num2words' cardinal mode, the currency named from the table below,
and the minor units written as a fraction ("and 56/100"), the check-writing convention invoices
use. Chinese invoices spell amounts in the financial numerals (大写: 壹贰叁 ... 元角分), which
`chinese_amount` writes (GB/T conventions: 零 between non-zero digits, 整 when no minor units).
"""

from __future__ import annotations

from num2words import num2words

from commerce import money

_NAMES: dict[str, dict[str, str]] = {
    "en": {"USD": "US dollars", "EUR": "euros", "CNY": "Chinese yuan", "GBP": "pounds sterling"},
    "es": {"USD": "dólares estadounidenses", "EUR": "euros", "CNY": "yuanes", "GBP": "libras"},
    "ar": {"USD": "دولار أمريكي", "EUR": "يورو", "CNY": "يوان صيني", "GBP": "جنيه إسترليني"},
}
_AND = {"en": "and", "es": "con", "ar": "و"}
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")
_ZH_CURRENCY = {"CNY": "人民币", "USD": "美元", "EUR": "欧元", "GBP": "英镑"}


def amount_in_words(minor: int, currency: str, lang: str) -> str:
    """``minor`` units of ``currency`` spelled out in ``lang`` (en, es, ar, zh)."""
    digits = money.exponent(currency)
    major, cents = divmod(minor, 10**digits) if digits else (minor, 0)
    if lang == "zh":
        return chinese_amount(minor, currency)
    name = _NAMES.get(lang, _NAMES["en"]).get(currency, currency)
    words = f"{num2words(major, lang=lang)} {name}"
    if digits:
        words += f" {_AND.get(lang, 'and')} {cents:0{digits}d}/{10**digits}"
    return words


def _four(n: int) -> str:
    """0 < n < 10000 in financial numerals, with inner zeros as one 零."""
    out, zero = "", False
    for place in range(3, -1, -1):
        d = n // 10**place % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[d] + _SMALL[place]
    return out


def chinese_integer(n: int) -> str:
    """A non-negative integer below 10^16 in financial numerals (0 -> 零)."""
    if n == 0:
        return "零"
    if n >= 10**16:
        raise ValueError("too large to spell")
    groups = []
    while n:
        n, rest = divmod(n, 10000)
        groups.append(rest)
    out = ""
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            continue
        if out and (groups[i + 1] == 0 or g < 1000):
            out += "零"
        out += _four(g) + _GROUPS[i]
    return out


def chinese_amount(minor: int, currency: str) -> str:
    """E.g. 123456 CNY -> 人民币壹仟贰佰叁拾肆元伍角陆分; 100 CNY -> 人民币壹元整."""
    digits = money.exponent(currency)
    value = money.to_major(minor, currency)
    major = int(value)
    fraction = int((value - major) * 100) if digits else 0
    jiao, fen = divmod(fraction, 10)
    text = _ZH_CURRENCY.get(currency, currency) + chinese_integer(major) + "元"
    if jiao == 0 and fen == 0:
        return text + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif major:
        text += "零"
    if fen:
        text += _DIGITS[fen] + "分"
    return text
