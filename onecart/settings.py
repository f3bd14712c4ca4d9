"""One settings object for every OneCart process, read from the environment (and the checkout's
`.env`; the environment wins).

Nothing reads configuration at import time: call :func:`get_settings` where a value is needed.
Every network address defaults to loopback, so `make run` works on a fresh machine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import AfterValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.marketplace_http import MAX_STREAM_DEADLINE_S, deadline_problem
from commerce.sweep_claim import read_timeout_problem, request_deadline_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
# Most past days a demo replays (ONECART_DEMO_HISTORY_DAYS, `onecart ingest --history`).
MAX_HISTORY_DAYS = 90
# The checkout's var/, whatever directory a command is started from.
DEFAULT_HOME = REPO_ROOT / "var"
# The checkout's .env, never the starting directory's: the services `onecart up` starts run in the
# checkout, and a command started elsewhere must see the values they see.
ENV_FILE = REPO_ROOT / ".env"
# Host names the site always answers to (only this machine reaches them). IPv6 literals are left
# out: werkzeug's TRUSTED_HOSTS cannot match "[::1]".
LOOPBACK_HOST_NAMES = ("localhost", "127.0.0.1")


def accept_field_names(model: type[BaseSettings], data: Any) -> Any:
    """Let code pass a setting by its field name (`Settings(home=...)`) without the environment
    doing the same: pydantic's `populate_by_name` would also read the field `home` from the
    shell's HOME (and `path`, `user`, ... likewise), so field names are mapped to the aliases here,
    where only constructor keywords can carry them."""
    if not isinstance(data, dict):
        return data
    renamed = dict(data)
    for name, info in model.model_fields.items():
        if info.alias and name in renamed and name != info.alias:
            renamed[info.alias] = renamed.pop(name)
    return renamed


def _fits_the_sweep_claim(value: float) -> float:
    problem = read_timeout_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _fits_the_sweep_claim_whole(value: float) -> float:
    problem = request_deadline_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _a_stream_deadline(value: float) -> float:
    problem = deadline_problem(value, longest=MAX_STREAM_DEADLINE_S)
    if problem:
        raise ValueError(problem)
    return value


def _five_field_cron(value: str) -> str:
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError("must be a cron expression of five fields: minute hour day month weekday")
    return value


class Settings(BaseSettings):
    """Environment-driven configuration; each field's alias is the variable that sets it."""

    # Variables are read by alias only (no populate_by_name): see accept_field_names.
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    home: Path = Field(DEFAULT_HOME, alias="ONECART_HOME")
    # `production` refuses default secrets and turns sandbox conveniences off (onecart/production.py).
    env: Literal["development", "production"] = Field("development", alias="ONECART_ENV")
    # Free wallet top-ups, Stripe test cards and localstripe; default: on in development only.
    sandbox_mode: bool | None = Field(None, alias="ONECART_SANDBOX_MODE")
    # Sign-up finishes through an e-mailed link, so the form never tells whether an address has
    # an account (needs SMTP_HOST); default: on in production, off in development.
    signup_confirmation: bool | None = Field(None, alias="ONECART_SIGNUP_CONFIRMATION")
    marketplaces_file: Path = Field(REPO_ROOT / "marketplaces.toml", alias="ONECART_MARKETPLACES")

    site_host: str = Field("127.0.0.1", alias="ONECART_SITE_HOST")
    site_port: int = Field(5000, alias="ONECART_SITE_PORT")
    dagster_host: str = Field("127.0.0.1", alias="ONECART_DAGSTER_HOST")
    dagster_port: int = Field(3000, alias="ONECART_DAGSTER_PORT")
    # The Dagster UI has no sign-in: production refuses a host other than loopback unless this
    # says a proxy in front of it asks for one (docs/deploy.md).
    dagster_behind_auth_proxy: bool = Field(False, alias="ONECART_DAGSTER_BEHIND_AUTH_PROXY")
    sandbox_host: str = Field("127.0.0.1", alias="ONECART_SANDBOX_HOST")
    sandbox_port: int = Field(8800, alias="ONECART_SANDBOX_PORT")
    # Total offers across all sandbox marketplaces (≈ 2,000 each by default).
    sandbox_offers: int = Field(12_000, alias="ONECART_SANDBOX_OFFERS")
    sandbox_seed: int = Field(42, alias="ONECART_SANDBOX_SEED")
    # Seconds an adapter waits for a marketplace's answer (marketplaces.toml option
    # `read_timeout_s` overrides it per marketplace); a write that times out is "unknown".
    # Bounded above by the abandoned-cancellation sweep's claim on a part (commerce.sweep_claim;
    # the sweep also renews the claim while a call runs): checked when the settings are read.
    marketplace_read_timeout_s: Annotated[float, AfterValidator(_fits_the_sweep_claim)] = Field(
        15.0, alias="ONECART_MARKETPLACE_READ_TIMEOUT_S"
    )
    # Seconds one try of a marketplace request may take in all: connect, send and the whole
    # answer (adapters.request_deadline; httpx's timeouts are per socket operation, so a
    # trickled answer outlasts them). A write past it is "unknown", a read transient.
    # marketplaces.toml's `deadline_s` overrides it per marketplace. Bounded above by the sweep's
    # claim (commerce.sweep_claim).
    marketplace_deadline_s: Annotated[float, AfterValidator(_fits_the_sweep_claim_whole)] = Field(
        60.0, alias="ONECART_MARKETPLACE_DEADLINE_S"
    )
    # The same for a large body the adapter reads in chunks (merchant feeds, unpaged product
    # lists): from the request to the body's last byte. At most six hours.
    marketplace_stream_deadline_s: Annotated[float, AfterValidator(_a_stream_deadline)] = Field(
        1800.0, alias="ONECART_MARKETPLACE_STREAM_DEADLINE_S"
    )

    meili_url: str = Field("http://127.0.0.1:7700", alias="MEILI_URL")
    meili_master_key: str = Field("onecart-local-master-key-0123456789", alias="MEILI_MASTER_KEY")
    meili_index: str = Field("products", alias="MEILI_INDEX")
    # The site searches with this key; empty: derived from the master key (search_index/search_keys.py).
    meili_search_key: str | None = Field(None, alias="MEILI_SEARCH_KEY")
    meili_bin: str | None = Field(None, alias="MEILI_BIN")
    meili_max_indexing_memory: str = Field("1GiB", alias="MEILI_MAX_INDEXING_MEMORY")

    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    # Order workers `onecart up` runs (one `rq worker-pool`); the checkout benchmark uses it too.
    rq_workers: int = Field(8, ge=1, le=64, alias="ONECART_RQ_WORKERS")
    # A marketplace that bills more than the shopper paid for a sub-order: up to this many basis
    # points (1/100 %) of the asked amount OneCart absorbs; beyond, the sub-order is cancelled on
    # the marketplace and its share refunded.
    overcharge_tolerance_bps: int = Field(
        100, ge=0, le=1000, alias="ONECART_OVERCHARGE_TOLERANCE_BPS"
    )
    database_url: str | None = Field(None, alias="DATABASE_URL")

    # "local": one machine, `dagster dev` on SQLite storage. "cluster": dagster-webserver and
    # dagster-daemon on PostgreSQL storage with queued, concurrent runs (docs/deploy.md).
    profile: Literal["local", "cluster"] = Field("local", alias="ONECART_PROFILE")
    # Dagster's run, event and schedule storage in the cluster profile (postgresql://...).
    dagster_postgres_url: str | None = Field(None, alias="ONECART_DAGSTER_POSTGRES_URL")
    dagster_max_concurrent_runs: int = Field(3, ge=1, le=64, alias="ONECART_DAGSTER_MAX_RUNS")
    # uWSGI worker processes of the site (each with four threads; onecart/site_server.py).
    site_workers: int = Field(2, ge=1, le=64, alias="ONECART_SITE_WORKERS")

    secret_key: str = Field("onecart-dev-secret-key-change-me", alias="SECRET_KEY")
    # Fernet key (urlsafe base64, 32 bytes) for marketplace API keys at rest.
    encryption_key: str = Field(
        "b25lY2FydC1kZXYtZW5jcnlwdGlvbi1rZXktMzJieXQ=", alias="ONECART_ENCRYPTION_KEY"
    )
    session_cookie_secure: bool = Field(False, alias="ONECART_SECURE_COOKIES")
    # Reverse proxies / load balancers in front of the site whose X-Forwarded-For is trusted
    # (0: the socket's address is the client's); the per-client rate limits key on it.
    trusted_proxies: int = Field(0, ge=0, le=5, alias="ONECART_TRUSTED_PROXIES")
    # The bearer token that shows /healthz's error details (internal hosts, ports, users); in
    # production nothing else does (storefront.health.routes). Empty: statuses only there.
    health_token: str | None = Field(None, alias="ONECART_HEALTH_TOKEN", repr=False)

    stripe_api_key: str = Field("sk_test_onecart_localstripe", alias="STRIPE_API_KEY")
    stripe_publishable_key: str = Field(
        "pk_test_onecart_localstripe", alias="STRIPE_PUBLISHABLE_KEY"
    )
    stripe_webhook_secret: str = Field("whsec_onecart_local", alias="STRIPE_WEBHOOK_SECRET")
    # When set, the stripe library talks to this base URL (localstripe); real keys leave it empty.
    stripe_api_base: str | None = Field("http://127.0.0.1:8420", alias="STRIPE_API_BASE")

    # Checked here (five fields, croniter's rules, which Dagster applies) so a bad value is named
    # by its variable before anything starts, not by Dagster's schedule once its UI loads.
    schedule_cron: Annotated[str, AfterValidator(_five_field_cron)] = Field(
        "*/30 * * * *", alias="ONECART_SCHEDULE_CRON"
    )
    # Marketplace partitions run at once by `onecart ingest` (0: one per CPU core).
    pipeline_workers: int = Field(0, ge=0, le=32, alias="ONECART_PIPELINE_WORKERS")
    fx_rates_url: str | None = Field(None, alias="ONECART_FX_RATES_URL")
    # `onecart up --ingest` (`make run`) on a fresh demo home, every marketplace in the sandbox:
    # the sandbox's catalog of each of the last N days is replayed first (pipelines/replay.py),
    # so price charts and price drops have data from the start; 0 loads today's catalog only.
    demo_history_days: int = Field(3, ge=0, le=MAX_HISTORY_DAYS, alias="ONECART_DEMO_HISTORY_DAYS")

    smtp_host: str | None = Field(None, alias="SMTP_HOST")
    smtp_port: int = Field(25, alias="SMTP_PORT")
    smtp_sender: str = Field("OneCart <orders@onecart.local>", alias="SMTP_SENDER")
    # TLS to the mail server (commerce.mail): starttls (port 587), ssl (port 465) or none (a
    # relay on this machine; production refuses none for another host).
    smtp_security: Literal["none", "starttls", "ssl"] = Field("none", alias="SMTP_SECURITY")
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD", repr=False)
    # The site's public address for links in e-mails (password reset), e.g. https://shop.example.
    public_url: str | None = Field(None, alias="ONECART_PUBLIC_URL")
    # The host names the site answers to (comma-separated; ".example.com" takes its subdomains):
    # a request naming another Host is refused (400), so neither a redirect nor a link the site
    # builds from the request points at a forged host. Required in production.
    trusted_hosts: str | None = Field(None, alias="ONECART_TRUSTED_HOSTS")

    @model_validator(mode="after")
    def _no_fake_stripe_by_default_in_production(self) -> Settings:
        # localstripe is a sandbox convenience: production talks to Stripe unless told otherwise.
        if self.env == "production" and "stripe_api_base" not in self.model_fields_set:
            self.stripe_api_base = None
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def sandbox_enabled(self) -> bool:
        """Sandbox conveniences (free top-ups, test cards, localstripe): ONECART_SANDBOX_MODE when
        set, else on in development and off in production."""
        return self.sandbox_mode if self.sandbox_mode is not None else not self.is_production

    @property
    def signup_confirmation_enabled(self) -> bool:
        """ONECART_SIGNUP_CONFIRMATION when set, else on in production only."""
        if self.signup_confirmation is not None:
            return self.signup_confirmation
        return self.is_production

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure` in production whatever ONECART_SECURE_COOKIES says."""
        return self.session_cookie_secure or self.is_production

    @property
    def configured_trusted_hosts(self) -> list[str]:
        """ONECART_TRUSTED_HOSTS as a list of lower-case names (empty when unset)."""
        names = (self.trusted_hosts or "").split(",")
        return [name.strip().lower() for name in names if name.strip()]

    @property
    def site_trusted_hosts(self) -> list[str]:
        """The Host names the site answers to (Flask's TRUSTED_HOSTS): ONECART_TRUSTED_HOSTS, and
        always the loopback names and ONECART_SITE_HOST: the health probe of `onecart up` asks
        http://ONECART_SITE_HOST:PORT/healthz (with 0.0.0.0 too), and a developer's browser
        opens localhost. None of them is a host another site's owner controls."""
        names = [*self.configured_trusted_hosts, *LOOPBACK_HOST_NAMES]
        if ":" not in self.site_host:  # an IPv6 literal cannot be matched (LOOPBACK_HOST_NAMES)
            names.append(self.site_host.lower())
        return list(dict.fromkeys(names))

    @model_validator(mode="before")
    @classmethod
    def _field_names_from_code(cls, data: Any) -> Any:
        return accept_field_names(cls, data)

    @property
    def home_dir(self) -> Path:
        """ONECART_HOME as an absolute path (created on demand by the code that writes there)."""
        return self.home.resolve()

    @property
    def site_url(self) -> str:
        return f"http://{self.site_host}:{self.site_port}"

    @property
    def dagster_url(self) -> str:
        return f"http://{self.dagster_host}:{self.dagster_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.sandbox_host}:{self.sandbox_port}"

    @property
    def pipeline_db_path(self) -> Path:
        """The pipeline's private DuckDB file: only Dagster assets open it."""
        return self.home_dir / "pipeline.duckdb"

    @property
    def warehouse_path(self) -> Path:
        """The analysts' published read-only copy, replaced atomically after each run."""
        return self.home_dir / "warehouse.duckdb"

    @property
    def storefront_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'storefront.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once on first use."""
    return Settings()
