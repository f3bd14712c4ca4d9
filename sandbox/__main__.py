"""Command line: ``python -m sandbox serve ...`` (see the package docstring for the options)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

from werkzeug.serving import make_server

from onecart.settings import get_settings
from sandbox.app import SandboxConfig, create_app
from sandbox.knobs import KnobError, parse_cli_knob
from sandbox.marketplaces import SERVED_MARKETPLACES
from sandbox.service import DEFAULT_PRICE_EPOCH_SECONDS, MAX_PRICE_EPOCH_SECONDS


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments; defaults come from OneCart's settings."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="OneCart demo marketplaces"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the sandbox marketplaces over HTTP")
    serve.add_argument(
        "--host", default=settings.sandbox_host, help="address to bind (default %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=settings.sandbox_port, help="port (default %(default)s)"
    )
    serve.add_argument(
        "--offers",
        type=int,
        default=settings.sandbox_offers,
        help="total offers across the six core marketplaces; Amazon and Sokoni add a third of one share each (default %(default)s)",
    )
    serve.add_argument(
        "--seed", type=int, default=settings.sandbox_seed, help="world seed (default %(default)s)"
    )
    serve.add_argument(
        "--price-epoch",
        type=int,
        default=0,
        help="price epoch: each epoch changes ~1%% of catalog prices (default 0, the base catalog)",
    )
    serve.add_argument(
        "--price-epoch-seconds",
        type=float,
        default=DEFAULT_PRICE_EPOCH_SECONDS,
        help="prices move with time: one more price epoch every this many seconds since start "
        "(default %(default)s: ~3%% of offers per day; 0 keeps prices still)",
    )
    serve.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="SLUG.NAME=VALUE",
        help="a starting knob value, e.g. shopwave.latency_ms=200 or all.malformed_rate=0 (repeatable)",
    )
    serve.add_argument(
        "--public-url",
        default=None,
        help="base URL to put in image and product links (default http://HOST:PORT)",
    )
    serve.add_argument("--quiet", action="store_true", help="do not log every request")
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Turn parsed arguments into a SandboxConfig, validating the knobs."""
    knobs: dict[str, dict[str, object]] = {}
    for text in args.knob:
        slug, name, value = parse_cli_knob(text)
        knobs.setdefault(slug, {})[name] = value
    if args.offers < 0:
        raise KnobError("--offers cannot be negative")
    if args.price_epoch < 0:
        raise KnobError("--price-epoch cannot be negative")
    if not 0 <= args.price_epoch_seconds <= MAX_PRICE_EPOCH_SECONDS:
        raise KnobError(f"--price-epoch-seconds must be 0 to {MAX_PRICE_EPOCH_SECONDS}")
    return SandboxConfig(
        host=args.host,
        port=args.port,
        offers=args.offers,
        seed=args.seed,
        price_epoch=args.price_epoch,
        price_epoch_seconds=args.price_epoch_seconds,
        knobs=knobs,
        public_url=args.public_url,
    )


def serve(config: SandboxConfig, *, quiet: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting requests and return."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING if quiet else logging.INFO)
    app = create_app(config)
    server = make_server(config.host, config.port, app, threaded=True)
    if server.port != config.port:  # --port 0: the links must carry the port really bound
        config = replace(config, port=server.port)
        app = create_app(config)
        server.app = app
    base = config.advertised_url or f"http://{config.host}:{server.port}"
    print(
        f"OneCart sandbox listening on {base} (seed {config.seed}, {config.offers} offers)",
        flush=True,
    )
    for profile in SERVED_MARKETPLACES:
        print(
            f"  {profile.slug:<10} {profile.api_format:<12} {profile.currency}  "
            f"{app.world.offer_count(profile.slug):>8} offers  {base}/{profile.slug}",
            flush=True,
        )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker = threading.Thread(target=server.serve_forever, name="sandbox-http", daemon=True)
    worker.start()
    while not stop.wait(0.5):
        if not worker.is_alive():
            break
    server.shutdown()
    server.server_close()
    print("OneCart sandbox stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sandbox``."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        create_app(config)  # fail here, with a message, rather than half-started
    except (KnobError, ValueError) as exc:
        print(f"python -m sandbox: {exc}", file=sys.stderr)
        return 2
    serve(config, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
