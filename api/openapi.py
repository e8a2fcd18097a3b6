"""`GET /openapi.json`: the REST API as an OpenAPI 3.1 document.

The document is built here, as data, from the constants the handlers enforce (page sizes, body
limits, the bounds of a request's values, the scopes), so that changing a limit in the code
changes what the document says with it. tests/unit/test_openapi.py holds the document to the
OpenAPI 3.1 schema, to the app's routes (both ways) and to what the handlers answer.

Conventions:
- every error is `{"error": "<why>"}` (components/schemas/Error), whoever answers it: a handler,
  the exception handlers of api/app.py or RequestLimits;
- answers are closed objects (`additionalProperties: false`), so a field a handler starts to
  answer without being described here fails the tests; request bodies are open, because the
  handlers ignore the fields they do not read;
- a bearer operation's `security` names the one scope its handler requires
  (`api.auth.require`): OpenAPI 3.1 allows such a list ("roles") for any kind of scheme.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api import balances, referrals
from api.errors import RETRY_AFTER
from api.request_limits import DEFAULT_LIMIT, MAX_HEADER_BYTES, WEBHOOK_PATH, limit_for
from api.request_values import CORRELATION_RULE, IDEMPOTENCY_RULE
from connectors.adjustments import POINTS_RULE, REASON_RULE
from connectors.kafka import CORRELATION_HEADER
from connectors.shopify import (
    HMAC_HEADER,
    SHOP_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
)
from loyalnest.tokens import (
    ALGORITHM,
    ISSUER,
    SCOPE_ADJUST,
    SCOPE_ANALYTICS,
    SCOPE_REDEEM,
    SCOPE_REFERRALS_MANAGE,
    SCOPE_REFERRALS_VIEW,
    SCOPE_TIERS_MANAGE,
    SCOPE_VIEW,
    SCOPES,
)
from loyalty.commands import MAX_REASON
from loyalty.customers import MAX_ADJUSTMENT
from loyalty.customers import Status as DecisionStatus
from loyalty.fields import SETTING_MONEY, UUID_TEXT
from loyalty.i18n import BUILT_IN, DEFAULT_LOCALE
from loyalty.ledger import Kind, Source
from loyalty.limits import (
    MAX_ID,
    MAX_JSON_DEPTH,
    MAX_JSON_INTEGER_DIGITS,
    MAX_POINTS,
    MAX_REWARD_ID,
    MAX_TEXT,
)
from loyalty.orders import ORDER_TOPICS
from loyalty.referral_codes import ALPHABET, LENGTH
from loyalty.referrals import Reason as ReferralReason
from loyalty.referrals import Status as ReferralStatus
from loyalty.rfm import Segment
from loyalty.tier_config import (
    MAX_ENTRY_BONUS,
    MAX_MULTIPLIER,
    MAX_NAME,
    MAX_THRESHOLD,
    MAX_TIERS,
    Metric,
    Period,
)
from loyalty.tier_preview import AS_OF_RULE

Json = dict[str, Any]

OPENAPI_PATH = "/openapi.json"
BEARER = "bearerAuth"
SHOPIFY_HMAC = "shopifyHmac"
# Literals in the handlers, named once here: the page size when `limit` is absent (transactions
# and an advocate's referrals), the transactions' first `before` (past every seq), and the
# largest points_earned tier threshold (loyalty/tier_config.py).
DEFAULT_PAGE = 50
FIRST_SEQ_BOUND = 2**62
MAX_POINTS_THRESHOLD = 10**10
RATE_LIMIT_RETRY_AFTER = 1  # api/webhooks.py answers 429 with Retry-After: 1
BUILT_IN_LOCALES = sorted({locale for key, locale in BUILT_IN if key == "points.balance"})

# ------------------------------------------------------------------------------ schemas

STRING: Json = {"type": "string"}
INTEGER: Json = {"type": "integer", "format": "int64"}
COUNT: Json = {"type": "integer", "minimum": 0}
BOOLEAN: Json = {"type": "boolean"}
TIME: Json = {"type": "string", "format": "date-time"}
DATE: Json = {"type": "string", "format": "date"}
UUID: Json = {"type": "string", "format": "uuid"}
SHOPIFY_ID: Json = {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID}
DECIMAL_TEXT: Json = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
# A tier metric's amount: order amounts are net of refunds, so one is not promised >= 0.
SIGNED_DECIMAL_TEXT: Json = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def described(schema: Json, description: str) -> Json:
    return {**schema, "description": description}


def or_null(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def choice(values: Iterable[str]) -> Json:
    return {"type": "string", "enum": [str(value) for value in values]}  # an enum's values


def anchored(pattern: str) -> str:
    """A Python `fullmatch` pattern as a JSON Schema one (which matches anywhere unanchored)."""
    return f"^(?:{pattern})$"


def closed(properties: Json, *, optional: Iterable[str] = ()) -> Json:
    """An answer's object: each property is there unless named optional, and nothing else."""
    absent = set(optional)
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in absent],
        "additionalProperties": False,
    }


def open_object(properties: Json, *, required: Sequence[str]) -> Json:
    """A request body: the fields read, and any others, which the handler ignores."""
    return {"type": "object", "properties": properties, "required": list(required)}


def counts_by_name(description: str) -> Json:
    return {"type": "object", "additionalProperties": COUNT, "description": description}


def counts_of(names: Iterable[str]) -> Json:
    """An object naming every one of `names` with its count, zeros included."""
    return closed(dict.fromkeys(names, COUNT))


def page_of(item: str, next_before: Json) -> Json:
    return closed(
        {
            "items": {"type": "array", "items": ref(item)},
            "next_before": described(
                or_null(next_before), "`before` for the next page; null on the last page"
            ),
        }
    )


def error_schema() -> Json:
    return closed(
        {"error": described(STRING, "What was refused, and the rule it broke, in words.")}
    )


def redemption_schemas() -> Json:
    request = open_object(
        {
            "customer_id": described(
                {
                    "anyOf": [
                        SHOPIFY_ID,
                        {"type": "string", "pattern": "^(?!0+$)[0-9]{1,19}$"},
                    ]
                },
                f"The customer's Shopify id: a JSON integer or a string of ASCII digits, "
                f"1 to {MAX_ID}.",
            ),
            "points": {"type": "integer", "minimum": 1, "maximum": MAX_POINTS},
            "reward_id": {"type": "string", "minLength": 1, "maxLength": MAX_REWARD_ID},
        },
        required=["customer_id", "points", "reward_id"],
    )
    view = closed(
        {
            "redemption_id": UUID,
            "status": choice(DecisionStatus),
            "reason": described(
                or_null(STRING), "Why it failed (insufficient_points, invalid_points)."
            ),
            "customer_id": SHOPIFY_ID,
            "points": INTEGER,
            "reward_id": STRING,
            "created_at": TIME,
            "decided_at": or_null(TIME),
        }
    )
    return {"RedemptionRequest": request, "Redemption": view}


def adjustment_schemas() -> Json:
    request = open_object(
        {
            "points": described(
                {
                    "type": "integer",
                    "minimum": -MAX_ADJUSTMENT,
                    "maximum": MAX_ADJUSTMENT,
                    "not": {"const": 0},
                },
                f"{POINTS_RULE}. Above 0 adds points, below 0 deducts them.",
            ),
            "reason": described(
                {"type": "string", "minLength": 1, "maxLength": MAX_REASON},
                f"The merchant's text ({REASON_RULE}); answers call it `memo`.",
            ),
        },
        required=["points", "reason"],
    )
    view = closed(
        {
            "adjustment_id": UUID,
            "status": choice(DecisionStatus),
            "reason": described(
                or_null(STRING),
                "Why it failed (insufficient_points, invalid_points); null unless failed.",
            ),
            "customer_id": SHOPIFY_ID,
            "points": INTEGER,
            "memo": described(STRING, "The request's `reason`, as sent."),
            "balance_after": described(or_null(INTEGER), "Once completed."),
            "ledger_event_id": described(or_null(STRING), "Once completed."),
            "created_at": TIME,
            "decided_at": or_null(TIME),
        }
    )
    return {"AdjustmentRequest": request, "Adjustment": view}


def balance_schemas() -> Json:
    balance = closed(
        {
            "merchant_id": UUID,
            "customer_id": SHOPIFY_ID,
            "balance": described(INTEGER, "Spendable points."),
            "pending": described(INTEGER, "Points earned but not spendable yet."),
            "lifetime_earned": INTEGER,
            "next_expiry": or_null(closed({"points": INTEGER, "at": TIME})),
            "locale": STRING,
            "updated_at": TIME,
            "description": described(STRING, "The balance in words, in `locale`."),
        }
    )
    transaction = closed(
        {
            "event_id": STRING,
            "type": choice(Kind),
            "points": INTEGER,
            "balance_after": INTEGER,
            "seq": described(INTEGER, "The entry's place in the customer's ledger."),
            "description": STRING,
            "locale": STRING,
            "order_id": or_null(SHOPIFY_ID),
            "refund_id": or_null(SHOPIFY_ID),
            "redemption_id": or_null(STRING),
            "adjustment_id": or_null(STRING),
            "source": described(choice(Source), "Where the points came from."),
            "source_id": STRING,
            "correlation_id": or_null(STRING),
            "created_at": TIME,
            "memo": described(or_null(STRING), "An adjustment's text; null on other entries."),
        }
    )
    return {
        "Balance": balance,
        "Transaction": transaction,
        "TransactionPage": page_of("Transaction", INTEGER),
    }


def rfm_schemas() -> Json:
    score = or_null({"type": "integer", "minimum": 1, "maximum": 5})
    segments = closed(
        {
            "merchant_id": UUID,
            "as_of": described(or_null(DATE), "The picture's day; null before the first order."),
            "total": COUNT,
            "segments": counts_of(segment.value for segment in Segment),
        }
    )
    customer = closed(
        {
            "customer_id": SHOPIFY_ID,
            "recency_days": described(
                or_null(COUNT), "Days since the last paid order; null for a prospect."
            ),
            "frequency": COUNT,
            "monetary": described(DECIMAL_TEXT, "Money as decimal text."),
            "r": score,
            "f": score,
            "m": score,
            "segment": choice(Segment),
            "as_of": DATE,
        }
    )
    return {"SegmentCounts": segments, "CustomerRfm": customer}


def referral_schemas() -> Json:
    code = {"type": "string", "pattern": f"^[{ALPHABET}]{{{LENGTH}}}$"}
    link = {
        "code": code,
        "customer_id": described(SHOPIFY_ID, "The advocate."),
        "url": described({"type": "string", "format": "uri"}, "The link the advocate shares."),
        "created_at": TIME,
    }
    referral = closed(
        {
            "referral_id": UUID,
            "code": code,
            "status": choice(ReferralStatus),
            "reason": or_null(choice(ReferralReason)),
            "advocate": described(
                or_null(closed({"customer_id": SHOPIFY_ID})),
                "Null while the code's advocate is not known yet.",
            ),
            "friend": closed({"customer_id": SHOPIFY_ID}),
            "order_id": SHOPIFY_ID,
            "rewards": closed(
                {
                    "advocate_points": INTEGER,
                    "friend_points": INTEGER,
                    "pending_until": or_null(TIME),
                    "reversed": BOOLEAN,
                }
            ),
            "decided_at": TIME,
            "created_at": TIME,
            "updated_at": TIME,
        }
    )
    return {
        "ReferralCodeRequest": open_object(
            {"customer_id": described(SHOPIFY_ID, "The advocate's Shopify id (a JSON integer).")},
            required=["customer_id"],
        ),
        "ReferralCode": closed(link),
        "ReferralCodeWithCounts": closed(
            {**link, "referrals": counts_of(status.value for status in ReferralStatus)}
        ),
        "Referral": referral,
        "ReferralPage": page_of(
            "Referral",
            {"type": "string", "pattern": f"^[^_]+_{UUID_TEXT.pattern}$"},
        ),
    }


def decimal_input(bound: Json, high: str, what: str) -> Json:
    """A decimal a merchant types: a string such as "12.50" or a JSON number, with at most
    10 digits before the point and 2 after (loyalty.fields.SETTING_MONEY). The bounds of the
    string form are in the description only: a pattern cannot compare numbers."""
    return described(
        {
            "anyOf": [
                {"type": "string", "pattern": anchored(SETTING_MONEY.pattern)},
                {"type": "number", **bound, "maximum": float(high)},
            ]
        },
        f"{what}, up to {high}, with at most 2 decimal places: a string or a JSON number.",
    )


def threshold_for(metric: Metric) -> Json:
    if metric is Metric.POINTS_EARNED:
        return described(
            {"type": "integer", "minimum": 1, "maximum": MAX_POINTS_THRESHOLD}, "Whole points."
        )
    return decimal_input({"exclusiveMinimum": 0}, str(MAX_THRESHOLD), "An amount above 0")


def tier_schemas() -> Json:
    tier_request = open_object(
        {
            "name": described(
                {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": r"\S"},
                "Not blank; trimmed. Unique in any case.",
            ),
            "threshold": described(
                {"anyOf": [threshold_for(metric) for metric in Metric]},
                "What the metric must reach: whole points for points_earned, an amount "
                "(at most 2 decimal places) for amount_spent. Thresholds ascend strictly.",
            ),
            "multiplier": {
                **decimal_input(
                    {"minimum": 1}, str(MAX_MULTIPLIER), "From 1, applied to order earns"
                ),
                "default": "1",
            },
            "entry_bonus": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_ENTRY_BONUS,
                "default": 0,
            },
        },
        required=["name", "threshold"],
    )
    config_request = {
        **open_object(
            {
                "metric": choice(Metric),
                "period": choice(Period),
                "tiers": {"type": "array", "maxItems": MAX_TIERS, "items": ref("TierRequest")},
            },
            required=["metric", "period", "tiers"],
        ),
        # The threshold's form depends on the metric.
        "allOf": [metric_thresholds(metric) for metric in Metric],
    }
    tier = closed(
        {
            "name": STRING,
            "tier_id": UUID,
            "threshold": {"anyOf": [INTEGER, DECIMAL_TEXT]},
            "multiplier": DECIMAL_TEXT,
            "entry_bonus": INTEGER,
        }
    )
    version = closed(
        {
            "version": INTEGER,
            "effective_at": TIME,
            "metric": choice(Metric),
            "period": choice(Period),
            "tiers": {"type": "array", "items": tier},
        }
    )
    settings = closed(
        {
            "merchant_id": UUID,
            "current": described(or_null(ref("TierVersion")), "The configuration in force."),
            "pending": described(
                or_null(ref("TierVersion")), "A configuration saved but not in force yet."
            ),
        }
    )
    return {
        "TierRequest": tier_request,
        "TierConfigRequest": config_request,
        "TierVersion": version,
        "TierSettings": settings,
        "TierCounts": tier_counts_schema(),
        "TierPreview": tier_preview_schema(),
        "CustomerTier": customer_tier_schema(),
    }


def metric_thresholds(metric: Metric) -> Json:
    return {
        "if": {"properties": {"metric": {"const": metric.value}}, "required": ["metric"]},
        "then": {
            "properties": {"tiers": {"items": {"properties": {"threshold": threshold_for(metric)}}}}
        },
    }


def tier_counts_schema() -> Json:
    return closed(
        {
            "merchant_id": UUID,
            "as_of": described(or_null(TIME), "When the flow last counted; null before then."),
            "customers": COUNT,
            "tiers": counts_by_name("Customers per tier, every configured tier named."),
            "no_tier": COUNT,
        }
    )


def tier_preview_schema() -> Json:
    by_tier = closed(
        {"tiers": counts_by_name("Customers per tier name."), "no_tier": COUNT},
    )
    return closed(
        {
            "merchant_id": UUID,
            "as_of": TIME,
            "customers": COUNT,
            "today": by_tier,
            "proposed": by_tier,
            "moved_up": COUNT,
            "moved_down": COUNT,
            "unchanged": COUNT,
            "entry_bonuses": COUNT,
            "entry_bonus_points": COUNT,
        }
    )


def customer_tier_schema() -> Json:
    """Without tiers configured (`metric` null) the status fields are absent."""
    points_or_money = described(
        {"anyOf": [INTEGER, SIGNED_DECIMAL_TEXT]},
        "Whole points for points_earned, decimal text for amount_spent.",
    )
    status_fields = {
        "period": choice(Period),
        "progress": points_or_money,
        "next_tier": or_null(STRING),
        "delta_to_next": or_null(points_or_money),
        "delta_to_retain": points_or_money,
        "period_end": or_null(TIME),
    }
    return closed(
        {
            "customer_id": SHOPIFY_ID,
            "as_of": TIME,
            "tier": or_null(STRING),
            "tier_id": or_null(UUID),
            "multiplier": DECIMAL_TEXT,
            "metric": or_null(choice(Metric)),
            **status_fields,
        },
        optional=status_fields,
    )


def operations_schemas() -> Json:
    check = described(STRING, '"ok", or "error: <what failed>".')
    webhook_outcomes = [
        closed({"status": {"const": "accepted"}, "correlation_id": STRING}),
        closed({"status": {"const": "duplicate"}}),
        closed({"status": {"const": "ignored"}, "topic": STRING}),
        closed({"status": {"const": "dead_lettered"}, "reason": STRING}),
    ]
    return {
        "WebhookOutcome": {"oneOf": webhook_outcomes},
        "Health": closed({"status": {"const": "ok"}}),
        "Readiness": closed(
            {
                "status": choice(["ready", "not ready"]),
                "checks": closed(dict.fromkeys(("kafka", "mongo", "redis", "postgres"), check)),
            }
        ),
    }


def schemas() -> Json:
    return {
        "Error": error_schema(),
        **redemption_schemas(),
        **adjustment_schemas(),
        **balance_schemas(),
        **rfm_schemas(),
        **referral_schemas(),
        **tier_schemas(),
        **operations_schemas(),
    }


# --------------------------------------------------------------------------- parameters


def path_parameter(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def query_parameter(name: str, schema: Json, description: str) -> Json:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def header_parameter(name: str, schema: Json, description: str, *, required: bool) -> Json:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": schema,
        "description": description,
    }


def parameter(name: str) -> Json:
    return {"$ref": f"#/components/parameters/{name}"}


def shared_parameters() -> Json:
    """The parameters several operations take, each once."""
    return {
        "CustomerId": path_parameter(
            "customer_id",
            SHOPIFY_ID,
            "The customer's Shopify id in ASCII digits; anything else is 400.",
        ),
        "Locale": query_parameter(
            "locale",
            {"type": "string", "pattern": "^[a-z]{2,3}$"},
            f"A locale with a balance description: {', '.join(BUILT_IN_LOCALES)} built in, plus "
            f"any stored; any other value is 400. Default: the merchant's locale "
            f"({DEFAULT_LOCALE} if it has no description).",
        ),
        "Limit": query_parameter(
            "limit",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": balances.MAX_PAGE,
                "default": DEFAULT_PAGE,
            },
            "Entries per page, in ASCII digits; out of range is 400.",
        ),
        "IdempotencyKey": header_parameter(
            "Idempotency-Key",
            {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": "^[ -~]+$"},
            f"{IDEMPOTENCY_RULE}. The same key with the same body is the same request.",
            required=True,
        ),
        "CorrelationId": header_parameter(
            CORRELATION_HEADER,
            {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            f"A tracing id ({CORRELATION_RULE}); a new one when absent.",
            required=False,
        ),
    }


# ---------------------------------------------------------------------------- responses


def json_content(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


def answer(description: str, schema: Json) -> Json:
    return {"description": description, "content": json_content(schema)}


def retry_after(seconds: int) -> Json:
    return {
        "Retry-After": {
            "description": f"Seconds to wait before retrying ({seconds}).",
            "schema": {"type": "integer", "minimum": 1},
        }
    }


def error(description: str, *, retry_after_seconds: int | None = None) -> Json:
    response = answer(description, ref("Error"))
    if retry_after_seconds is not None:
        response["headers"] = retry_after(retry_after_seconds)
    return response


def unavailable(needs: str, then: str = "retry later") -> Json:
    """A store or Kafka did not answer: 503 with Retry-After (api/errors.py), never a 500."""
    return error(f"{needs} unavailable: {then}.", retry_after_seconds=int(RETRY_AFTER))


def shared_responses() -> Json:
    return {
        "Unauthenticated": {
            **error("No bearer token, or one that is not valid now."),
            "headers": {
                "WWW-Authenticate": {"schema": {"const": "Bearer"}, "description": "Always."}
            },
        },
        "Forbidden": error("The token does not grant the operation's scope."),
        "HeadersTooLarge": {
            "description": f"The request headers are larger than {MAX_HEADER_BYTES} bytes in all "
            "(RequestLimits). A head still arriving when it passes the limit is answered by the "
            "HTTP protocol itself, as text/plain, and the connection is closed.",
            "content": {
                **json_content(ref("Error")),
                "text/plain": {"schema": STRING},
            },
        },
    }


def shared_response(name: str) -> Json:
    return {"$ref": f"#/components/responses/{name}"}


# --------------------------------------------------------------------------- operations

STRICT_JSON = (
    "Strict JSON (loyalty/json_input.py): UTF-8 without a byte order mark, no lone surrogates, "
    f"integers of at most {MAX_JSON_INTEGER_DIGITS} digits, nesting at most {MAX_JSON_DEPTH} "
    "deep; anything else is 400 `body is not JSON: <why>`."
)


@dataclass(frozen=True)
class Access:
    """Who may call an operation, and what refusing a caller answers."""

    security: list[dict[str, list[str]]]
    refusals: Json = field(default_factory=dict)


PUBLIC = Access([])
SIGNED_BY_SHOPIFY = Access([{SHOPIFY_HMAC: []}])  # its handler answers 401 itself


def bearer(scope: str) -> Access:
    return Access(
        [{BEARER: [scope]}],
        {"401": shared_response("Unauthenticated"), "403": shared_response("Forbidden")},
    )


def json_body(schema: Json, description: str = STRICT_JSON) -> Json:
    return {"required": True, "description": description, "content": json_content(schema)}


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    access: Access,
    responses: Json,
    parameters: Sequence[Json] = (),
    body: Json | None = None,
    description: str | None = None,
) -> Json:
    built: Json = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description is not None:
        built["description"] = description
    if parameters:
        built["parameters"] = list(parameters)
    if body is not None:
        built["requestBody"] = body
    built["security"] = access.security
    built["responses"] = {**responses, **access.refusals}
    return built


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    operation: Json


def webhook() -> Json:
    required = (
        (HMAC_HEADER, "Base64 HMAC-SHA256 of the raw body under the shop's webhook secret."),
        (SHOP_HEADER, "The shop's *.myshopify.com domain (at most 80 characters, any case)."),
        (
            TOPIC_HEADER,
            f"Order topics are processed ({', '.join(sorted(ORDER_TOPICS))}); "
            "any other is answered 200 `ignored`.",
        ),
        (WEBHOOK_ID_HEADER, "The delivery's id: a repeat of an accepted one is `duplicate`."),
    )
    headers = [
        header_parameter(name, {"type": "string", "minLength": 1}, text, required=True)
        for name, text in required
    ]
    return operation(
        "receiveShopifyWebhook",
        "A Shopify webhook",
        tag="webhooks",
        access=SIGNED_BY_SHOPIFY,
        description="200 only once Kafka has acknowledged the order (or its dead letter); "
        "Shopify retries anything else. An order that can never be valid is dead-lettered "
        "and answered 200 `dead_lettered` with the reason.",
        parameters=[*headers, parameter("CorrelationId")],
        body=json_body(
            {"description": "Shopify's payload for the topic."},
            f"{STRICT_JSON} Checked only once the signature is.",
        ),
        responses={
            "200": answer(
                "Accepted, a duplicate delivery, an ignored topic or dead-lettered.",
                ref("WebhookOutcome"),
            ),
            "400": error(
                "A header missing or empty, a malformed shop domain or correlation id, "
                "or a body that is not strict JSON."
            ),
            "401": error("The signature is not the shop's (or the shop is unknown)."),
            "429": error(
                "Over the shop's webhooks per second.",
                retry_after_seconds=RATE_LIMIT_RETRY_AFTER,
            ),
            "503": error(
                "Kafka did not acknowledge, PostgreSQL is unavailable, or the same delivery is "
                "in flight: retry later.",
                retry_after_seconds=int(RETRY_AFTER),
            ),
        },
    )


def command_responses(what: str, resource: str) -> Json:
    """What a request that becomes a points command answers (api/command_requests.py)."""
    return {
        "200": answer(f"The {what}, decided (a repeat of a decided request).", ref(resource)),
        "202": answer(f"The {what}, pending: the points flow decides it.", ref(resource)),
        "400": error(
            "A body that is not strict JSON or breaks a rule, a missing or malformed "
            "Idempotency-Key or correlation id, or a locale not served."
        ),
        "409": error("The key's first request is being recorded: retry."),
        "422": error(f"The Idempotency-Key was used for a different {what}."),
        "503": unavailable("MongoDB, PostgreSQL or Kafka", "retry with the same Idempotency-Key"),
    }


def create_redemption() -> Json:
    return operation(
        "createRedemption",
        "Redeem points for a reward",
        tag="points",
        access=bearer(SCOPE_REDEEM),
        parameters=[parameter("IdempotencyKey"), parameter("CorrelationId"), parameter("Locale")],
        body=json_body(ref("RedemptionRequest")),
        responses=command_responses("redemption", "Redemption"),
    )


def get_redemption() -> Json:
    return operation(
        "getRedemption",
        "A redemption",
        tag="points",
        access=bearer(SCOPE_VIEW),
        parameters=[
            path_parameter("redemption_id", UUID, "As answered when it was created."),
        ],
        responses={
            "200": answer("The redemption.", ref("Redemption")),
            "404": error("Unknown, or another merchant's."),
            "503": unavailable("MongoDB"),
        },
    )


def get_balance() -> Json:
    return operation(
        "getBalance",
        "A customer's balance",
        tag="points",
        access=bearer(SCOPE_VIEW),
        parameters=[parameter("CustomerId"), parameter("Locale")],
        responses={
            "200": answer("At most BALANCE_CACHE_SECONDS stale.", ref("Balance")),
            "400": error("A customer id that is not a Shopify id, or a locale not served."),
            "404": error("No balance for this customer (or another merchant's)."),
            "503": unavailable("MongoDB or PostgreSQL"),
        },
    )


def get_transactions() -> Json:
    return operation(
        "getTransactions",
        "A customer's ledger, newest first",
        tag="points",
        access=bearer(SCOPE_VIEW),
        parameters=[
            parameter("CustomerId"),
            parameter("Limit"),
            query_parameter(
                "before",
                {"type": "integer", "minimum": 1, "maximum": FIRST_SEQ_BOUND},
                "Entries with a smaller seq: the previous page's `next_before`.",
            ),
        ],
        responses={
            "200": answer("One page.", ref("TransactionPage")),
            "400": error("A bad customer id, `limit` or `before`."),
            "404": error("No balance for this customer (or another merchant's)."),
            "503": unavailable("MongoDB"),
        },
    )


def create_adjustment() -> Json:
    return operation(
        "createAdjustment",
        "Add or deduct points by hand",
        tag="points",
        access=bearer(SCOPE_ADJUST),
        description="A deduction larger than the spendable balance fails "
        "(`insufficient_points`) and changes nothing.",
        parameters=[
            parameter("CustomerId"),
            parameter("IdempotencyKey"),
            parameter("CorrelationId"),
            parameter("Locale"),
        ],
        body=json_body(ref("AdjustmentRequest")),
        responses=command_responses("adjustment", "Adjustment"),
    )


def get_adjustment() -> Json:
    return operation(
        "getAdjustment",
        "An adjustment",
        tag="points",
        access=bearer(SCOPE_VIEW),
        parameters=[path_parameter("adjustment_id", UUID, "As answered when it was created.")],
        responses={
            "200": answer("The adjustment.", ref("Adjustment")),
            "404": error("Unknown, or another merchant's."),
            "503": unavailable("MongoDB"),
        },
    )


def get_segments() -> Json:
    return operation(
        "getSegments",
        "Customers per RFM segment",
        tag="rfm",
        access=bearer(SCOPE_ANALYTICS),
        responses={
            "200": answer("Every segment named, zeros included.", ref("SegmentCounts")),
            "503": unavailable("MongoDB"),
        },
    )


def get_customer_rfm() -> Json:
    return operation(
        "getCustomerRfm",
        "A customer's RFM values and scores",
        tag="rfm",
        access=bearer(SCOPE_ANALYTICS),
        parameters=[parameter("CustomerId")],
        responses={
            "200": answer("Scored with the merchant's current scales.", ref("CustomerRfm")),
            "400": error("A customer id that is not a Shopify id."),
            "404": error("Unknown customer, or another merchant's."),
            "503": unavailable("MongoDB"),
        },
    )


def create_referral_code() -> Json:
    return operation(
        "createReferralCode",
        "An advocate's referral code",
        tag="referrals",
        access=bearer(SCOPE_REFERRALS_MANAGE),
        body=json_body(ref("ReferralCodeRequest")),
        responses={
            "200": answer("The advocate's code, made before.", ref("ReferralCode")),
            "201": answer("The advocate's new code.", ref("ReferralCode")),
            "400": error("A body that is not strict JSON, or not a positive 64-bit id."),
            "503": unavailable("PostgreSQL or Kafka"),
        },
    )


def get_referral_code() -> Json:
    code_pattern = "".join(sorted(set(ALPHABET + ALPHABET.lower())))
    return operation(
        "getReferralCode",
        "A referral code, with its referrals counted by status",
        tag="referrals",
        access=bearer(SCOPE_REFERRALS_VIEW),
        parameters=[
            path_parameter(
                "code",
                {"type": "string", "pattern": rf"^\s*[{code_pattern}]{{{LENGTH}}}\s*$"},
                f"{LENGTH} characters of {ALPHABET}, in any case; surrounding spaces ignored.",
            )
        ],
        responses={
            "200": answer("The code.", ref("ReferralCodeWithCounts")),
            "400": error("Not a referral code's shape."),
            "404": error("Unknown, or another merchant's."),
            "503": unavailable("PostgreSQL"),
        },
    )


def get_referral() -> Json:
    return operation(
        "getReferral",
        "A referral, as the referrals flow decided it",
        tag="referrals",
        access=bearer(SCOPE_REFERRALS_VIEW),
        parameters=[
            path_parameter(
                "referral_id",
                {"type": "string", "pattern": anchored(UUID_TEXT.pattern)},
                "A UUID, lower-case, with hyphens.",
            )
        ],
        responses={
            "200": answer("The referral.", ref("Referral")),
            "400": error("Not a UUID (lower-case, with hyphens)."),
            "404": error("Unknown, or another merchant's."),
            "503": unavailable("PostgreSQL"),
        },
    )


def get_advocate_referrals() -> Json:
    return operation(
        "getAdvocateReferrals",
        "An advocate's referrals, newest first",
        tag="referrals",
        access=bearer(SCOPE_REFERRALS_VIEW),
        parameters=[
            parameter("CustomerId"),
            query_parameter(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": referrals.MAX_PAGE,
                    "default": DEFAULT_PAGE,
                },
                "Referrals per page, in ASCII digits; out of range is 400.",
            ),
            query_parameter(
                "before",
                {"type": "string", "pattern": f"^[^_]+_{UUID_TEXT.pattern}$"},
                "The previous page's `next_before`.",
            ),
        ],
        responses={
            "200": answer("One page.", ref("ReferralPage")),
            "400": error("A bad customer id, `limit` or `before`."),
            "404": error("The customer has no referral code with this merchant."),
            "503": unavailable("PostgreSQL"),
        },
    )


def get_tiers() -> Json:
    return operation(
        "getTiers",
        "The VIP tier configuration",
        tag="tiers",
        access=bearer(SCOPE_VIEW),
        responses={
            "200": answer("In force now, and saved for later.", ref("TierSettings")),
            "503": unavailable("PostgreSQL"),
        },
    )


def put_tiers() -> Json:
    return operation(
        "putTiers",
        "Save a VIP tier configuration",
        tag="tiers",
        access=bearer(SCOPE_TIERS_MANAGE),
        body=json_body(ref("TierConfigRequest")),
        responses={
            "201": answer("The version saved; it takes effect shortly after.", ref("TierVersion")),
            "400": error("Not strict JSON, or the field and the rule it breaks."),
            "404": error("The token's merchant is not known."),
            "503": unavailable("PostgreSQL"),
        },
    )


def get_tier_counts() -> Json:
    return operation(
        "getTierCounts",
        "Customers per VIP tier",
        tag="tiers",
        access=bearer(SCOPE_ANALYTICS),
        responses={
            "200": answer("As the tiers flow counts them.", ref("TierCounts")),
            "503": unavailable("PostgreSQL"),
        },
    )


def preview_tiers() -> Json:
    return operation(
        "previewTiers",
        "What a proposed tier configuration would do; changes nothing",
        tag="tiers",
        access=bearer(SCOPE_TIERS_MANAGE),
        parameters=[
            query_parameter(
                "as_of",
                {"type": "string", "examples": ["2026-12-31", "2026-12-31T12:00:00+00:00"]},
                f"The moment to preview ({AS_OF_RULE}); default: now.",
            )
        ],
        body=json_body(ref("TierConfigRequest")),
        responses={
            "200": answer("The customers' moves.", ref("TierPreview")),
            "400": error("A bad configuration or `as_of`."),
            "503": unavailable("PostgreSQL"),
        },
    )


def get_customer_tier() -> Json:
    return operation(
        "getCustomerTier",
        "A customer's tier and status",
        tag="tiers",
        access=bearer(SCOPE_VIEW),
        description="A customer without orders (with this merchant) holds no tier.",
        parameters=[parameter("CustomerId")],
        responses={
            "200": answer("The customer's tier now.", ref("CustomerTier")),
            "400": error("A customer id that is not a Shopify id."),
            "503": unavailable("PostgreSQL"),
        },
    )


def health() -> Json:
    return operation(
        "health",
        "The process is up",
        tag="operations",
        access=PUBLIC,
        responses={"200": answer("Always.", ref("Health"))},
    )


def ready() -> Json:
    return operation(
        "ready",
        "Its dependencies answer",
        tag="operations",
        access=PUBLIC,
        description="Its 503 is a probe's answer, not an Error: each check's outcome.",
        responses={
            "200": answer(
                "Kafka, MongoDB (translations loaded), Redis, PostgreSQL.", ref("Readiness")
            ),
            "503": answer("A dependency did not answer.", ref("Readiness")),
        },
    )


def metrics() -> Json:
    return operation(
        "metrics",
        "Prometheus metrics",
        tag="operations",
        access=PUBLIC,
        responses={
            "200": {
                "description": "The Prometheus text format.",
                "content": {"text/plain": {"schema": STRING}},
            }
        },
    )


def openapi_document() -> Json:
    return operation(
        "openapi",
        "This document",
        tag="operations",
        access=PUBLIC,
        responses={"200": answer("OpenAPI 3.1.", {"type": "object"})},
    )


def endpoints() -> list[Endpoint]:
    """Every route of api/app.py, in its order, and this document's own."""
    return [
        Endpoint("post", WEBHOOK_PATH, webhook()),
        Endpoint("post", "/v1/redemptions", create_redemption()),
        Endpoint("get", "/v1/redemptions/{redemption_id}", get_redemption()),
        Endpoint("get", "/v1/customers/{customer_id}/balance", get_balance()),
        Endpoint("get", "/v1/customers/{customer_id}/transactions", get_transactions()),
        Endpoint("post", "/v1/customers/{customer_id}/adjustments", create_adjustment()),
        Endpoint("get", "/v1/adjustments/{adjustment_id}", get_adjustment()),
        Endpoint("get", "/v1/segments", get_segments()),
        Endpoint("get", "/v1/customers/{customer_id}/rfm", get_customer_rfm()),
        Endpoint("post", "/v1/referrals/codes", create_referral_code()),
        Endpoint("get", "/v1/referrals/codes/{code}", get_referral_code()),
        Endpoint("get", "/v1/referrals/{referral_id}", get_referral()),
        Endpoint("get", "/v1/customers/{customer_id}/referrals", get_advocate_referrals()),
        Endpoint("get", "/v1/tiers", get_tiers()),
        Endpoint("put", "/v1/tiers", put_tiers()),
        Endpoint("get", "/v1/tiers/counts", get_tier_counts()),
        Endpoint("post", "/v1/tiers/preview", preview_tiers()),
        Endpoint("get", "/v1/customers/{customer_id}/tier", get_customer_tier()),
        Endpoint("get", "/health", health()),
        Endpoint("get", "/ready", ready()),
        Endpoint("get", "/metrics", metrics()),
        Endpoint("get", OPENAPI_PATH, openapi_document()),
    ]


def with_request_limits(path: str, built: Json) -> Json:
    """The answers RequestLimits gives on every route before its handler runs."""
    limits: Json = {"431": shared_response("HeadersTooLarge")}
    if "requestBody" in built:
        limits["413"] = error(
            f"The body is larger than {limit_for(path)} bytes (declared or streamed); "
            "the connection is closed."
        )
    return {**built, "responses": dict(sorted({**built["responses"], **limits}.items()))}


def paths() -> Json:
    grouped: Json = {}
    for endpoint in endpoints():
        grouped.setdefault(endpoint.path, {})[endpoint.method] = with_request_limits(
            endpoint.path, endpoint.operation
        )
    return grouped


# ------------------------------------------------------------------------------ document


def scopes_in_use(built_paths: Json) -> dict[str, list[str]]:
    """Each scope the REST operations require, with the operations requiring it."""
    used: dict[str, list[str]] = {}
    for methods in built_paths.values():
        for built in methods.values():
            for requirement in built["security"]:
                for scope in requirement.get(BEARER, []):
                    used.setdefault(scope, []).append(built["operationId"])
    return dict(sorted(used.items()))


def security_schemes(built_paths: Json) -> Json:
    used = scopes_in_use(built_paths)
    listed = "\n".join(f"- `{scope}`: {', '.join(ops)}" for scope, ops in used.items())
    grpc_only = ", ".join(f"`{scope}`" for scope in sorted(SCOPES - used.keys()))
    return {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An {ALGORITHM} JWT (`loyalnest token --shop S --scopes ...`) "
            f"with `iss` {ISSUER}, `sub` the merchant id, `shop`, `iat`, `exp`, and `scope`: "
            "the scopes it grants, space-separated. Each operation's security requirement "
            "names the one scope it needs (a token without it is 403). Scopes and the "
            f"operations needing them:\n{listed}\n\nThe others ({grpc_only}) are for gRPC.",
        },
        SHOPIFY_HMAC: {
            "type": "apiKey",
            "in": "header",
            "name": HMAC_HEADER,
            "description": "Shopify's signature: base64 HMAC-SHA256 of the raw body under the "
            "shop's webhook secret (the current one, or the previous one for an hour after a "
            "rotation).",
        },
    }


API_DESCRIPTION = f"""Stream-first loyalty engine for Shopify merchants.

Every call is scoped to the token's merchant: another merchant's redemption, adjustment,
customer or referral is answered as unknown (404, where the operation has one).
Errors are `{{"error": "..."}}` (the Error schema), also for unknown paths (404) and methods
(405). A store a call needs that does not answer is a 503 with `Retry-After`, never a 500.
Request bodies are at most {DEFAULT_LIMIT} bytes ({limit_for(WEBHOOK_PATH)} for the webhook),
and a request declaring a larger one is refused 413 whatever its method; request headers are
at most {MAX_HEADER_BYTES} bytes in all (431)."""


def api_version() -> str:
    """The package's version; a source tree that was never installed has none."""
    try:
        return metadata.version("loyalnest")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_document() -> Json:
    built_paths = paths()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LoyalNest API",
            "version": api_version(),
            "description": API_DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "webhooks", "description": "What Shopify sends."},
            {"name": "points", "description": "Balances, the ledger, redemptions, adjustments."},
            {"name": "rfm", "description": "RFM segments and scores."},
            {"name": "referrals", "description": "Referral codes and referrals."},
            {"name": "tiers", "description": "VIP tiers."},
            {"name": "operations", "description": "Probes, metrics, this document."},
        ],
        "paths": built_paths,
        "components": {
            "schemas": schemas(),
            "parameters": shared_parameters(),
            "responses": shared_responses(),
            "securitySchemes": security_schemes(built_paths),
        },
    }


DOCUMENT = build_document()
# Encoded once: the document never changes while the process runs.
ENCODED = json.dumps(DOCUMENT, ensure_ascii=False, allow_nan=False).encode("utf-8")


async def openapi(_request: Request) -> Response:
    return Response(ENCODED, media_type="application/json")
