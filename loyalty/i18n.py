"""Transaction descriptions in the merchant's or customer's language (en, ar, he built in)."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LOCALE = "en"

# (key, locale) -> template. Seeded into the `translations` collection, which may override them.
BUILT_IN: dict[tuple[str, str], str] = {
    ("points.earned.order", "en"): "Earned {points} points",
    ("points.earned.order", "ar"): "ربحت {points} نقطة",
    ("points.earned.order", "he"): "צברת {points} נקודות",
    ("points.reversed.refund", "en"): "{points} points reversed for a refund",
    ("points.reversed.refund", "ar"): "تم خصم {points} نقطة بسبب استرداد",
    ("points.reversed.refund", "he"): "{points} נקודות בוטלו בעקבות החזר",
    ("points.reversed.cancel", "en"): "{points} points reversed for a cancelled order",
    ("points.reversed.cancel", "ar"): "تم خصم {points} نقطة بسبب إلغاء الطلب",
    ("points.reversed.cancel", "he"): "{points} נקודות בוטלו בעקבות ביטול הזמנה",
    ("points.spent.redemption", "en"): "Spent {points} points on a reward",
    ("points.spent.redemption", "ar"): "استخدمت {points} نقطة للحصول على مكافأة",
    ("points.spent.redemption", "he"): "מימשת {points} נקודות בהטבה",
    ("points.earned.pending", "en"): "Earned {points} points, pending",
    ("points.earned.pending", "ar"): "ربحت {points} نقطة قيد الانتظار",
    ("points.earned.pending", "he"): "צברת {points} נקודות, ממתינות",
    ("points.released.pending", "en"): "{points} pending points are now available",
    ("points.released.pending", "ar"): "أصبحت {points} نقطة معلقة متاحة الآن",
    ("points.released.pending", "he"): "{points} נקודות ממתינות זמינות כעת",
    ("points.adjusted.added", "en"): "{points} points added by the store",
    ("points.adjusted.added", "ar"): "أضاف المتجر {points} نقطة",
    ("points.adjusted.added", "he"): "החנות הוסיפה {points} נקודות",
    ("points.adjusted.deducted", "en"): "{points} points deducted by the store",
    ("points.adjusted.deducted", "ar"): "خصم المتجر {points} نقطة",
    ("points.adjusted.deducted", "he"): "החנות הפחיתה {points} נקודות",
    ("points.expired.lot", "en"): "{points} points expired",
    ("points.expired.lot", "ar"): "انتهت صلاحية {points} نقطة",
    ("points.expired.lot", "he"): "פג תוקפן של {points} נקודות",
    ("points.expired.inactivity", "en"): "{points} points expired after a period of inactivity",
    ("points.expired.inactivity", "ar"): "انتهت صلاحية {points} نقطة بسبب عدم النشاط",
    ("points.expired.inactivity", "he"): "פג תוקפן של {points} נקודות עקב חוסר פעילות",
    ("points.bonus.referral", "en"): "Earned {points} points for a referral",
    ("points.bonus.referral", "ar"): "ربحت {points} نقطة مقابل إحالة",
    ("points.bonus.referral", "he"): "צברת {points} נקודות על הפניה",
    ("points.reversed.referral", "en"): "{points} referral points reversed",
    ("points.reversed.referral", "ar"): "تم خصم {points} نقطة من مكافأة الإحالة",
    ("points.reversed.referral", "he"): "{points} נקודות הפניה בוטלו",
    ("points.bonus.tier", "en"): "Earned {points} points for reaching a new tier",
    ("points.bonus.tier", "ar"): "ربحت {points} نقطة للوصول إلى مستوى جديد",
    ("points.bonus.tier", "he"): "צברת {points} נקודות על הגעה לדרגה חדשה",
    ("points.balance", "en"): "You have {balance} points",
    ("points.balance", "ar"): "لديك {balance} نقطة",
    ("points.balance", "he"): "יש לך {balance} נקודות",
}

# The descriptions a ledger entry may name.
TEXT_KEYS = frozenset(key for key, _locale in BUILT_IN)


def describe(
    translations: Mapping[tuple[str, str], str], key: str, locale: str, **values: int
) -> str:
    """The template for (key, locale), else for (key, en), filled with values."""
    template = translations.get((key, locale)) or translations.get((key, DEFAULT_LOCALE))
    if template is None:
        raise KeyError(f"no translation for {key!r}")
    return template.format(**values)
