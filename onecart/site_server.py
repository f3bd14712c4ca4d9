"""How the site is served: uWSGI's HTTP socket, N worker processes x 4 threads.

Why uWSGI rather than gunicorn (issue 9, bench/RESULTS.md "Listing page CPU: the server, the
guest's session"): on the listing page, under the search benchmark's load, the site's processes
spent ~0.7 ms less CPU per request under uWSGI than under gunicorn's gthread workers with the
same processes and threads (site ÷ Meilisearch CPU 0.42–0.45 against 0.55–0.57; /api/ping
0.29 against 0.83–0.88 ms). gunicorn parses HTTP and runs its worker loop in Python; uWSGI does
both in C. The listing's share of the two shared cores is what issue 9's target measures.

The options, and why:
- `--http-socket`: uWSGI speaks HTTP on the port itself (no separate router process). It
  answers one request per connection and then closes it, so `--add-header "Connection: close"`
  says so: without it a keep-alive client (a browser, httpx) may send its next request on the
  closed connection and see it reset. (`--http11-socket` keeps connections open, but an idle
  one holds a worker thread until it times out: 8 idle browsers would stall the site.)
- `--master`, `--processes`, `--threads 4`: as before, a page waiting on Meilisearch, a
  marketplace or Stripe holds a thread, not a process;
- `--lazy-apps`: each worker builds the app after the fork (as gunicorn's workers did), so no
  connection or thread is shared between processes; onecart.site_worker then freezes what the
  worker holds and starts the assistant model's preload;
- `--die-on-term`: SIGTERM (supervisord's stop) stops the server; uWSGI would reload on it;
- `--skip-atexit-teardown`: a worker told to die exits from inside its signal handler, and
  uWSGI's Python atexit hook then ran Py_Finalize there, clearing modules under threads (the
  model preload's torch, the request threads): a worker segfaulted in _PyModule_ClearDict,
  another hung, and supervisord SIGKILLed the site after 15 s. Nothing of the interpreter
  needs tearing down in a process that is ending (its sockets and files close with it);
  `tests/ops/test_site_server.py` stops a site whose workers loaded the model;
- `--need-app`: a worker whose app fails to load stops the server instead of answering 500s;
- `--disable-logging`: no access log, which would write order-status and password-reset tokens
  in full; the site's own JSON request log (storefront/request_log.py) redacts them;
- `--buffer-size 65535`: the largest request head accepted (uWSGI's default, 4 KB, refuses a
  browser with a few large cookies);
- no `--harakiri`: it would end a slow request by killing its whole worker, the other threads'
  requests with it; gunicorn's `--timeout 60` before watched the worker's loop, not requests
  (a page waiting on a marketplace or Stripe is bounded by those clients' own timeouts);
- `--thunder-lock`: the workers take turns at accept() instead of all waking per connection;
- `--ignore-sigpipe --ignore-write-errors --disable-write-exception`: a shopper who closes
  the tab before the answer is sent is not an error.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from onecart.processes import VENV_BIN, MissingProgramError

SITE_THREADS = 4
WSGI_MODULE = "onecart.site_wsgi:application"


def uwsgi_binary() -> Path:
    """uWSGI from the project's virtualenv (requirements.lock), else from PATH."""
    candidate = VENV_BIN / "uwsgi"
    if candidate.exists():
        return candidate
    found = shutil.which("uwsgi")
    if found:
        return Path(found)
    raise MissingProgramError(
        "uWSGI is not installed: run `make install` (requirements.lock pins pyuwsgi, uWSGI's wheel)"
    )


def site_server_argv(bind: str, workers: int, threads: int = SITE_THREADS) -> list[str]:
    """The command line that serves the site on `bind` ("host:port")."""
    return [
        str(uwsgi_binary()),
        "--http-socket",
        bind,
        "--add-header",
        "Connection: close",
        "--master",
        "--processes",
        str(workers),
        "--threads",
        str(threads),
        "--lazy-apps",
        "--single-interpreter",
        "--virtualenv",
        sys.prefix,
        "--module",
        WSGI_MODULE,
        "--need-app",
        "--die-on-term",
        "--skip-atexit-teardown",
        "--disable-logging",
        "--buffer-size",
        "65535",
        "--thunder-lock",
        "--ignore-sigpipe",
        "--ignore-write-errors",
        "--disable-write-exception",
    ]
