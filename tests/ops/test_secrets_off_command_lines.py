"""No secret on a process's command line (second security review).

Any local user reads every process's command line (`ps`, /proc/<pid>/cmdline), while a
process's environment is readable by its owner only. `onecart up` started Meilisearch with
`--master-key <key>` and the RQ worker pool and cron with `--url <REDIS_URL>` (a Redis password
inside it): both now reach the programs through their environment (`MEILI_MASTER_KEY`,
`RQ_REDIS_URL`), which supervisord.conf (mode 0600) carries.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from onecart import processes, services, supervisor_config
from onecart.settings import Settings

MASTER_KEY = "m3ili-master-key-for-production-9f8e"
REDIS_PASSWORD = "r3dis-pa55word-for-production"


def _settings(home: Path) -> Settings:
    return Settings(
        ONECART_HOME=home,
        MEILI_MASTER_KEY=MASTER_KEY,
        REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:6390/0",
    )


def test_no_service_command_line_carries_the_master_key_or_the_redis_password(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    catalog = {service.name: service for service in services.build_services(settings)}
    for service in catalog.values():
        command_line = " ".join(service.argv)
        assert MASTER_KEY not in command_line, service.name
        assert REDIS_PASSWORD not in command_line, service.name
    assert catalog["meilisearch"].env["MEILI_MASTER_KEY"] == MASTER_KEY
    for name in ("worker", "cron"):
        assert catalog[name].env["RQ_REDIS_URL"] == settings.redis_url
    config = supervisor_config.render_config(settings, list(catalog.values()), environ={})
    commands = [line for line in config.splitlines() if line.startswith("command=")]
    assert commands and not any(MASTER_KEY in line or REDIS_PASSWORD in line for line in commands)
    assert f'MEILI_MASTER_KEY="{MASTER_KEY}"' in config


def test_meilisearch_takes_its_master_key_from_the_environment(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    port = processes.free_port()
    meili = processes.start_meilisearch(
        settings, "meilisearch-key-test", tmp_path / "meili" / "data.ms", f"127.0.0.1:{port}"
    )
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", timeout=60, process=meili)
        assert MASTER_KEY not in Path(f"/proc/{meili.pid}/cmdline").read_bytes().decode()
        assert httpx.get(f"{url}/keys").status_code == 401
        with_key = httpx.get(f"{url}/keys", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        assert with_key.status_code == 200
    finally:
        processes.stop_pid(meili.pid)


def test_what_onecart_up_prints_never_carries_the_redis_password(tmp_path: Path) -> None:
    """`onecart up` reports each service with its URL ("= Redis answers at …"), on a terminal
    or in the journal of the unit that runs it at boot (docs/deploy.md)."""
    settings = Settings(
        ONECART_HOME=tmp_path, REDIS_URL=f"redis://onecart:{REDIS_PASSWORD}@10.0.0.5:6379/0"
    )
    catalog = {service.name: service for service in services.build_services(settings)}
    assert catalog["redis"].url == "redis://onecart:***@10.0.0.5:6379/0"
    assert all(REDIS_PASSWORD not in (service.url or "") for service in catalog.values())


@pytest.mark.parametrize("username", ["", "onecart"])
def test_a_redis_url_with_a_password_starts_a_redis_that_requires_it(
    tmp_path: Path, username: str
) -> None:
    """On a machine shared with other users, anyone could write to a password-less Redis on
    loopback, and RQ runs what it finds there: with a password in REDIS_URL, the Redis that
    `onecart up` starts requires it (set in a 0600 config file, not on its command line)."""
    port = processes.free_port()
    url = f"redis://{username}:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    settings = Settings(ONECART_HOME=tmp_path, REDIS_URL=url)
    service = {s.name: s for s in services.build_services(settings)}["redis"]
    assert service.managed and service.prepare is not None
    (tmp_path / "redis").mkdir()
    service.prepare()
    config = next(Path(arg) for arg in service.argv if arg.endswith(".conf"))
    assert config.stat().st_mode & 0o777 == 0o600
    assert REDIS_PASSWORD not in " ".join(service.argv)
    server = processes.start_process(settings, "redis-password-test", service.argv)
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port).ping()
        assert Path(f"/proc/{server.pid}/cmdline").read_bytes().find(REDIS_PASSWORD.encode()) < 0
    finally:
        processes.stop_pid(server.pid)
