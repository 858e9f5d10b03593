"""The plugin's permission names and who holds them by default (admins
hold every permission anyway)."""

#: create orders, pay, cancel and ask refunds of one's own orders
ORDER_CREATE = "payments:order:create"
#: one's own orders, their history and one's membership
ORDER_VIEW = "payments:order:view"
#: every order (detail, the admin list)
ORDER_VIEW_ANY = "payments:order:view_any"
#: cancel anyone's pending order, refund any order directly
ORDER_MANAGE = "payments:order:manage"
REFUND_REVIEW = "payments:refund:review"
COUPON_USE = "payments:coupon:use"
COUPON_MANAGE = "payments:coupon:manage"
MEMBERSHIP_MANAGE = "payments:membership:manage"
STATS_VIEW = "payments:stats:view"
RECONCILIATION_MANAGE = "payments:reconciliation:manage"

BUYERS = ["student", "teacher"]

DEFAULTS = {
    ORDER_CREATE: BUYERS,
    ORDER_VIEW: BUYERS,
    ORDER_VIEW_ANY: ["admin"],
    ORDER_MANAGE: ["admin"],
    REFUND_REVIEW: ["admin"],
    COUPON_USE: BUYERS,
    COUPON_MANAGE: ["admin"],
    MEMBERSHIP_MANAGE: ["admin"],
    STATS_VIEW: ["admin"],
    RECONCILIATION_MANAGE: ["admin"],
}
