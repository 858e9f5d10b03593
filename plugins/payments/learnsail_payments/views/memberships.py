"""Membership plans and the caller's membership (added; 001 会员专享)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from learnsail.api import PUBLIC, Service, no_content
from learnsail.errors import Conflict
from learnsail_payments import memberships
from learnsail_payments.models import MembershipPlan, Order
from learnsail_payments.money import number
from learnsail_payments.permissions import MEMBERSHIP_MANAGE, ORDER_VIEW
from learnsail_payments.schemas import (IdPath, MembershipSchema, PlanCreateSchema, PlanListQuery, PlanSchema,
                                        PlanUpdateSchema)
from learnsail_payments.views.common import may

plans = Service(name="payments.membership_plans", path="/api/v1/membership/plans",
                description="Membership plans on sale.")
admin_plans = Service(name="payments.admin_membership_plans", path="/api/v1/admin/membership/plans",
                      description="Create membership plans.")
admin_plan = Service(name="payments.admin_membership_plan", path="/api/v1/admin/membership/plans/{id}",
                     description="One membership plan.")
mine = Service(name="payments.my_membership", path="/api/v1/users/membership", description="The caller's membership.")


def plan_out(plan: MembershipPlan) -> dict:
    return {"id": plan.id, "name": plan.name, "description": plan.description, "duration_days": plan.duration_days,
            "price": number(plan.price), "currency": plan.currency, "is_active": plan.is_active,
            "sort_order": plan.sort_order, "product_type": memberships.PRODUCT}


@plans.get(permission=PUBLIC, schema={"querystring": PlanListQuery},
           responses={200: (PlanSchema(many=True), "The plans, in their order.")})
def list_plans(request: Any) -> list:
    """The membership plans on sale (anyone).  Buy one with ``POST
    /api/v1/orders {"product_type": "membership", "product_id": <id>}``;
    plan managers see inactive plans too with ``include_inactive=true``."""
    everything = bool(request.validated["querystring"].get("include_inactive")) and may(request, MEMBERSHIP_MANAGE)
    return [plan_out(p) for p in request.db.scalars(memberships.plans(everything))]


@admin_plans.post(permission=MEMBERSHIP_MANAGE, schema=PlanCreateSchema,
                  responses={201: (PlanSchema, "The new plan.")})
def create_plan(request: Any) -> dict:
    """Create a membership plan: ``duration_days`` of membership for ``price``."""
    plan = memberships.create_plan(request.db, request.validated["body"])
    request.response.status = 201
    return plan_out(plan)


@admin_plan.put(permission=MEMBERSHIP_MANAGE, schema={"path": IdPath, "body": PlanUpdateSchema},
                responses={200: (PlanSchema, "The changed plan.")})
def update_plan(request: Any) -> dict:
    """Change a plan (the fields given); pending orders keep their price.
    ``is_active: false`` takes it off sale."""
    plan = memberships.get_plan(request.db, request.validated["path"]["id"])
    return plan_out(memberships.update_plan(request.db, plan, request.validated["body"]))


@admin_plan.delete(permission=MEMBERSHIP_MANAGE, schema={"path": IdPath}, errors=(409,),
                   responses={204: (None, "Deleted.")})
def delete_plan(request: Any) -> Any:
    """Delete a plan nobody ever ordered (409 otherwise: take it off sale instead)."""
    plan = memberships.get_plan(request.db, request.validated["path"]["id"])
    ordered = request.db.scalar(sa.select(Order.id).where(Order.product_type == memberships.PRODUCT,
                                                          Order.product_id == plan.id).limit(1))
    if ordered is not None:
        raise Conflict("This plan was ordered; set is_active to false to take it off sale.", {"plan_id": plan.id})
    request.db.delete(plan)
    return no_content(request)


@mine.get(permission=ORDER_VIEW, responses={200: (MembershipSchema, "The caller's membership window.")})
def my_membership(request: Any) -> dict:
    """The caller's membership: whether it is active, since when, until when."""
    return memberships.of_user(request.db, request.identity.id)


SERVICES = (plans, admin_plans, admin_plan, mine)
