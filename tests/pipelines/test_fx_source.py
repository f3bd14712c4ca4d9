"""Where fx_rates reads from: a configured URL (either format), else the bundled files."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from onecart.processes import free_port
from pipelines.resources import FxRatesResource
from warehouse.fx_rates import OFFLINE_RATES_DIR

ECB_FILE = next(OFFLINE_RATES_DIR.glob("*.xml"))


@pytest.fixture
def rates_server(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving an ECB file with a different USD rate."""
    (tmp_path / "eurofxref-daily.xml").write_text(
        ECB_FILE.read_text()
        .replace("time='2026-11-24'", "time='2026-11-25'")
        .replace("currency='USD' rate='1.1573'", "currency='USD' rate='1.25'")
    )

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_url_the_bundled_rates_are_used() -> None:
    rates, warnings = FxRatesResource().load()
    assert warnings == []
    assert {"USD", "EUR", "NGN", "KES"} <= set(rates.rates)


def test_a_configured_url_wins_and_bundled_rates_fill_the_gaps(rates_server: str) -> None:
    rates, warnings = FxRatesResource(rates_url=f"{rates_server}/eurofxref-daily.xml").load()
    assert warnings == []
    assert rates.rates["EUR"] == Decimal("0.8")  # 1 / 1.25 from the served file
    assert rates.sources["EUR"].startswith("url:")
    assert rates.sources["NGN"].startswith("file:")  # the ECB publishes no naira rate


def test_an_unreachable_url_falls_back_to_the_bundled_rates_with_a_warning(
    rates_server: str,
) -> None:
    rates, warnings = FxRatesResource(rates_url=f"{rates_server}/missing.xml").load()
    assert len(warnings) == 1 and "404" in warnings[0]
    assert rates.sources["EUR"].startswith("file:")
