"""What Kiondo's Store API catalog (sandbox.woocommerce) and REST v3 order API
(sandbox.woocommerce_orders) share: product ids, WooCommerce's error shape and the store's dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from werkzeug.wrappers import Request

from sandbox.service import JsonError

PRODUCT_ID_BASE = 1000
PRODUCT_ID_STRIDE = 3
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
STORE_TIMEZONE = timezone(timedelta(hours=3))  # Africa/Nairobi


def product_id(index: int) -> int:
    """The WooCommerce post id of offer `index`."""
    return PRODUCT_ID_BASE + index * PRODUCT_ID_STRIDE


def index_from_id(wc_id: int, count: int) -> int | None:
    """The offer index behind a product id, or None when no offer of the `count` has it."""
    offset = wc_id - PRODUCT_ID_BASE
    if offset < 0 or offset % PRODUCT_ID_STRIDE or offset // PRODUCT_ID_STRIDE >= count:
        return None
    return offset // PRODUCT_ID_STRIDE


def wc_error(status: int, code: str, message: str) -> JsonError:
    """A WordPress REST error: `{"code", "message", "data": {"status"}}`."""
    return JsonError(status, {"code": code, "message": message, "data": {"status": status}})


def local_time(moment: datetime | None) -> str | None:
    """A moment in the store's time zone, as WooCommerce writes `date_*` fields."""
    return moment.astimezone(STORE_TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S") if moment else None


def gmt_time(moment: datetime | None) -> str | None:
    """A moment in GMT, as WooCommerce writes `date_*_gmt` fields."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if moment else None


def date_param(request: Request, name: str, gmt: bool) -> datetime | None:
    """An ISO 8601 `after`/`before` filter: in the store's time zone unless dates_are_gmt."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise wc_error(400, "rest_invalid_param", f"Invalid parameter(s): {name}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC if gmt else STORE_TIMEZONE)
    return moment
