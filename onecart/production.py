"""What a production deployment (ONECART_ENV=production) refuses to start with.

Every secret OneCart ships with has a public default so that `make run` works on a laptop. In
production the site, the RQ workers and the pipeline call :func:`require_production_ready` at
start-up and stop with an error that names each variable still at its default or too short
(each process only the secrets it uses: the site searches with MEILI_SEARCH_KEY and needs no
Meilisearch master key then; the pipeline and the workers write the index with it), and
each setting a real shop cannot run with: e-mailed links without an https ONECART_PUBLIC_URL (a
forged Host header would otherwise aim them), a mail server on another host without TLS (the
links are credentials), a Redis on another host without a password (RQ
jobs are pickled: write access is code execution in the workers), sandbox mode (free wallet
top-ups) beside a live Stripe key that reaches Stripe or beside a real marketplace in the
marketplaces file (the free money would pay real orders), Stripe test keys outside sandbox
mode (pretend card payments for real orders), and, outside sandbox mode, a
marketplaces file listing the sandbox's demo stores, the sandbox's Stripe publishable key while
cards go to Stripe, and a Dagster UI (no sign-in) on an address other than loopback unless
ONECART_DAGSTER_BEHIND_AUTH_PROXY says a proxy asks for one. The site also needs
ONECART_TRUSTED_HOSTS, the names it answers to (another Host header would aim its redirects and
links). Development (the default) accepts everything, so nothing changes for a laptop.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from onecart.settings import Settings

# Long enough that guessing is hopeless; Meilisearch itself demands 16 bytes in production.
MIN_SECRET_KEY_CHARS = 32
MIN_MEILI_MASTER_KEY_BYTES = 16
MIN_STRIPE_SECRET_CHARS = 20


@dataclass(frozen=True, slots=True)
class SecretRule:
    """One secret setting: its variable, where it lives on Settings, and its minimum length."""

    variable: str
    attribute: str
    min_length: int


SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule("SECRET_KEY", "secret_key", MIN_SECRET_KEY_CHARS),
    # A Fernet key is always 44 characters; only the default one is refused.
    SecretRule("ONECART_ENCRYPTION_KEY", "encryption_key", 44),
    SecretRule("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret", MIN_STRIPE_SECRET_CHARS),
    SecretRule("STRIPE_API_KEY", "stripe_api_key", MIN_STRIPE_SECRET_CHARS),
    SecretRule("MEILI_MASTER_KEY", "meili_master_key", MIN_MEILI_MASTER_KEY_BYTES),
)
# What only the processes that write the search index need: the pipeline and the RQ workers
# (the listings refresh after an admin's click). The site searches with MEILI_SEARCH_KEY, and
# needs the master key only to derive that key when it is not set.
INDEX_WRITER_VARIABLES = frozenset({"MEILI_MASTER_KEY"})


# Stripe secret and restricted keys that move real money.
LIVE_STRIPE_KEY_PREFIXES = ("sk_live_", "rk_live_")
# Stripe's test-mode keys: every payment made with them is pretend (test cards succeed).
TEST_STRIPE_KEY_PREFIXES = ("sk_test_", "rk_test_")
TEST_PUBLISHABLE_KEY_PREFIX = "pk_test_"
# A marketplaces.toml base_url starting with this is one of the sandbox's demo stores.
SANDBOX_URL_PLACEHOLDER = "${ONECART_SANDBOX_URL}"
LOCAL_HOSTS = frozenset({"localhost"})


class InsecureSettingsError(RuntimeError):
    """A production start refused; `problems` maps each variable to what is wrong with it."""

    def __init__(self, component: str, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        lines = "\n".join(f"  {name}: {why}" for name, why in self.problems.items())
        super().__init__(
            f"ONECART_ENV=production: the {component} refuses to start until these are set:\n"
            f"{lines}"
        )


def _default_of(attribute: str) -> object:
    return Settings.model_fields[attribute].default


def production_problems(
    settings: Settings,
    *,
    overrides: Mapping[str, str] | None = None,
    writes_search_index: bool = True,
    serves_the_site: bool = False,
) -> dict[str, str]:
    """Each secret variable that is a default or too short (empty when ready for production).

    `overrides` maps a variable to the value actually in use when a caller (the Flask config)
    replaced the setting. A process that does not write the search index (the site:
    `writes_search_index=False`) needs MEILI_SEARCH_KEY, or the master key to derive one from,
    not both. The site (`serves_the_site`) also needs the host names it answers to. The values
    never appear in the messages.
    """
    problems: dict[str, str] = {}

    def value_of(variable: str, attribute: str) -> str:
        value = (overrides or {}).get(variable)
        return str(getattr(settings, attribute) or "") if value is None else value

    search_key = value_of("MEILI_SEARCH_KEY", "meili_search_key")
    for rule in SECRET_RULES:
        searching_only = rule.variable in INDEX_WRITER_VARIABLES and not writes_search_index
        if searching_only and search_key:
            continue
        value = value_of(rule.variable, rule.attribute)
        if value == _default_of(rule.attribute):
            problems[rule.variable] = "is the public development default; set your own value"
        elif len(value.encode()) < rule.min_length:
            problems[rule.variable] = f"is too short; use at least {rule.min_length} characters"
        if searching_only and rule.variable in problems:
            problems[rule.variable] += (
                " (or give the site MEILI_SEARCH_KEY, a search-only key: then it needs no "
                "master key)"
            )
    master_key = value_of("MEILI_MASTER_KEY", "meili_master_key")
    if not writes_search_index and search_key and search_key == master_key:
        problems["MEILI_SEARCH_KEY"] = (
            "is the master key; give the site a search-only key (docs/deploy.md)"
        )
    if settings.stripe_api_base and not settings.sandbox_enabled:
        problems["STRIPE_API_BASE"] = (
            "points payments at a fake Stripe outside sandbox mode; unset it "
            "(or set ONECART_SANDBOX_MODE=true for a demo)"
        )
    if settings.signup_confirmation_enabled and not settings.smtp_host:
        problems["SMTP_HOST"] = (
            "is empty, so nobody could finish signing up (the link is e-mailed) or reset a "
            "password; set it (or ONECART_SIGNUP_CONFIRMATION=false to sign up without a link)"
        )
    if settings.smtp_host and not _is_https_url(settings.public_url):
        problems["ONECART_PUBLIC_URL"] = (
            "must be the shop's https:// address while links are e-mailed (SMTP_HOST): without "
            "it a password-reset or sign-up link is built from the request's Host header, which "
            "a forged request sets to another site"
        )
    if (
        settings.smtp_host
        and settings.smtp_security == "none"
        and not _is_local_host(settings.smtp_host)
    ):
        problems["SMTP_SECURITY"] = (
            "is none while SMTP_HOST is another machine: password-reset, sign-up and order-status "
            "links (and SMTP_PASSWORD) would cross the network in clear text. Set starttls "
            "(usually SMTP_PORT=587) or ssl (465), or relay through a mail server on this machine"
        )
    if (
        settings.sandbox_enabled
        and not settings.stripe_api_base
        and settings.stripe_api_key.startswith(LIVE_STRIPE_KEY_PREFIXES)
    ):
        problems["ONECART_SANDBOX_MODE"] = (
            "is on (free wallet top-ups) while STRIPE_API_KEY is a live key reaching Stripe: "
            "the free wallet money would pay for real orders. For a demo use a test key "
            "(sk_test_…) or localstripe (STRIPE_API_BASE); for a shop turn sandbox mode off"
        )
    if (
        settings.sandbox_enabled
        and "ONECART_SANDBOX_MODE" not in problems
        and (real_problem := _real_marketplaces_in_a_demo(settings))
    ):
        problems["ONECART_SANDBOX_MODE"] = real_problem
    if (
        not settings.sandbox_enabled
        and "STRIPE_API_KEY" not in problems  # the default (a test key) is named as such
        and settings.stripe_api_key.startswith(TEST_STRIPE_KEY_PREFIXES)
    ):
        problems["STRIPE_API_KEY"] = (
            "is a Stripe test key outside sandbox mode: card payments would be test payments "
            "(a test card succeeds, no money moves) while orders go to the real marketplaces. "
            "Set your live secret key (sk_live_…), or ONECART_SANDBOX_MODE=true for a demo"
        )
    # Test cards are charged server-side only in sandbox mode with localstripe
    # (commerce.payments.stripe_gateway.is_sandbox_mode); otherwise Stripe.js takes the card.
    cards_go_to_stripe = not (settings.sandbox_enabled and settings.stripe_api_base)
    if cards_go_to_stripe and (
        publishable_problem := _publishable_key_problem(
            settings.stripe_publishable_key, test_keys_allowed=settings.sandbox_enabled
        )
    ):
        problems["STRIPE_PUBLISHABLE_KEY"] = publishable_problem
    if not settings.dagster_behind_auth_proxy and not _is_local_host(settings.dagster_host):
        problems["ONECART_DAGSTER_HOST"] = (
            "is not a loopback address, and the Dagster UI has no sign-in: whoever reaches it "
            "launches runs and wipes assets. Keep it at 127.0.0.1 (an SSH tunnel to reach it), "
            "or put a proxy that asks for a sign-in in front and set "
            "ONECART_DAGSTER_BEHIND_AUTH_PROXY=true"
        )
    if serves_the_site and (hosts_problem := _trusted_hosts_problem(settings)):
        problems["ONECART_TRUSTED_HOSTS"] = hosts_problem
    health_token = settings.health_token or ""
    if serves_the_site and health_token and len(health_token.encode()) < MIN_SECRET_KEY_CHARS:
        # Optional (empty: nobody sees /healthz's details), but guessable when short.
        problems["ONECART_HEALTH_TOKEN"] = (
            f"is too short; use at least {MIN_SECRET_KEY_CHARS} characters (or leave it empty)"
        )
    if redis_problem := _redis_problem(settings.redis_url):
        problems["REDIS_URL"] = redis_problem
    if not settings.sandbox_enabled and (
        marketplaces_problem := _sandbox_marketplaces_problem(settings)
    ):
        problems["ONECART_MARKETPLACES"] = marketplaces_problem
    return problems


def _trusted_hosts_problem(settings: Settings) -> str | None:
    """Why the site cannot tell its own host from a forged one: no ONECART_TRUSTED_HOSTS, or one
    that leaves out ONECART_PUBLIC_URL's host (every e-mailed link would be answered 400)."""
    names = settings.configured_trusted_hosts
    if not names:
        return (
            "is empty: the site would take its own address from each request's Host header, "
            "so a forged one aims its redirects and links at another site. List the names the "
            "shop is reached by, e.g. shop.example.com,www.shop.example.com (.example.com: "
            "every subdomain); a request for another host is answered 400"
        )
    public_host = (urlsplit(settings.public_url or "").hostname or "").lower()
    if public_host and not any(_host_matches(public_host, name) for name in names):
        return (
            f"does not include {public_host}, the host of ONECART_PUBLIC_URL: the links the "
            "shop sends would be refused (400). Add it"
        )
    return None


def _host_matches(host: str, name: str) -> bool:
    """As Flask's TRUSTED_HOSTS matches: the name itself, or with a leading dot the domain and
    every subdomain of it."""
    if name.startswith("."):
        return host == name[1:] or host.endswith(name)
    return host == name


def _is_https_url(value: str | None) -> bool:
    parts = urlsplit(value or "")
    return parts.scheme == "https" and bool(parts.hostname)


def _is_local_host(host: str) -> bool:
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _publishable_key_problem(key: str, *, test_keys_allowed: bool) -> str | None:
    """Why checkout's Stripe.js cannot take a card with this key (cards go to Stripe: outside
    the sandbox's server-side test cards); a test key only in sandbox mode (a demo)."""
    if key == _default_of("stripe_publishable_key"):
        return (
            "is the sandbox's default, with which no card payment works; set your Stripe "
            "account's publishable key (pk_live_…)"
        )
    if not key.startswith("pk_"):
        # Browsers receive this value: a secret key pasted here would be published.
        return "is not a Stripe publishable key (pk_…); browsers receive it, so never a secret key"
    if key.startswith(TEST_PUBLISHABLE_KEY_PREFIX) and not test_keys_allowed:
        return (
            "is a Stripe test key outside sandbox mode: Stripe.js would take test cards, which "
            "move no money, for real orders. Set your live publishable key (pk_live_…)"
        )
    return None


def _redis_problem(redis_url: str) -> str | None:
    """Why REDIS_URL is unsafe: a Redis on another host reached without a password. RQ keeps
    jobs pickled there, so whoever can write to it runs code in the order workers."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix" or _is_local_host(parts.hostname or "localhost"):
        return None
    if parts.password:
        return None
    return (
        "reaches a Redis on another host without a password; whoever can write to it runs "
        "code in the order workers (RQ jobs are pickled). Give Redis a password (requirepass "
        "or an ACL user) and put it in the URL: redis://:PASSWORD@host:6379/0 (rediss:// for TLS)"
    )


def _active_marketplaces(settings: Settings) -> tuple[list[str], list[str]] | str:
    """The marketplaces file's active entries: (the sandbox's demo stores, every other one), or
    why the file cannot be read."""
    path = settings.marketplaces_file
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return f"{path} cannot be read ({exc.__class__.__name__}: {exc})"
    demo: list[str] = []
    real: list[str] = []
    for entry in document.get("marketplace", []):
        if not isinstance(entry, dict) or not entry.get("active", True):
            continue
        is_demo = str(entry.get("base_url", "")).startswith(SANDBOX_URL_PLACEHOLDER)
        (demo if is_demo else real).append(str(entry.get("slug", "?")))
    return demo, real


def _sandbox_marketplaces_problem(settings: Settings) -> str | None:
    """Why the marketplaces file cannot serve a real shop: unreadable, or active entries that
    are the sandbox's demo stores (orders to them would charge real cards for fake goods)."""
    path = settings.marketplaces_file
    active = _active_marketplaces(settings)
    if isinstance(active, str):
        return active
    demo = active[0]
    if not demo:
        return None
    return (
        f"{path} lists the sandbox's demo marketplaces ({', '.join(demo)}; base_url "
        f"{SANDBOX_URL_PLACEHOLDER}): orders to them would charge real cards for goods nobody "
        "sends. List your real marketplaces (or mark these active = false), or set "
        "ONECART_SANDBOX_MODE=true for a demo"
    )


def _real_marketplaces_in_a_demo(settings: Settings) -> str | None:
    """Why a demo (sandbox mode) cannot run with this marketplaces file: active entries that
    are not the sandbox's demo stores, where the free wallet top-ups would pay real orders (a
    WooCommerce order is created paid). An unreadable file is left to the processes that read
    it (the sync says why)."""
    active = _active_marketplaces(settings)
    if isinstance(active, str) or not active[1]:
        return None
    return (
        "is on (free wallet top-ups) while "
        f"{settings.marketplaces_file} lists real marketplaces ({', '.join(active[1])}): the "
        "free wallet money would pay real orders there. For a demo list only the sandbox's "
        f"stores (base_url {SANDBOX_URL_PLACEHOLDER}) or mark the others active = false; for "
        "a shop turn sandbox mode off"
    )


def require_production_ready(
    settings: Settings,
    component: str,
    *,
    overrides: Mapping[str, str] | None = None,
    writes_search_index: bool = True,
    serves_the_site: bool = False,
) -> None:
    """Raise InsecureSettingsError in production while any secret this component uses is a
    default or too short (see production_problems)."""
    if not settings.is_production:
        return
    problems = production_problems(
        settings,
        overrides=overrides,
        writes_search_index=writes_search_index,
        serves_the_site=serves_the_site,
    )
    if problems:
        raise InsecureSettingsError(component, problems)
