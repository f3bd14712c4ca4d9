"""E-mail leaves over TLS, signed in to the mail server, when the server is another machine.

Security review, fourth pass: OneCart spoke plain SMTP on SMTP_HOST:SMTP_PORT, with no STARTTLS,
no implicit TLS and no login. Its e-mails carry credentials (a password-reset link, a sign-up
link, an order's status link), which crossed the network to a remote mail server in clear text;
and the mail services a real shop uses (port 587 or 465, with a login) could not be used at
all. Now SMTP_SECURITY (starttls or ssl, the certificate checked against SMTP_HOST) and
SMTP_USERNAME / SMTP_PASSWORD apply to every e-mail, and production refuses a mail server on
another host without TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from commerce.db import get_session_factory
from commerce.models import User
from commerce.notification_models import Notification
from commerce.notifications import send_notification_emails
from commerce.password_reset import MailSettings, reset_email, send_email
from onecart import processes
from onecart.production import production_problems
from onecart.settings import Settings

USERNAME = "onecart-mailer"
PASSWORD = "mail-relay-password-0123"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key): the mail server's, trusted by the test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "mail.pem", directory / "mail.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _authenticator(
    _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@pytest.fixture
def tls_mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, list[Any]]]:
    """A mail server that takes mail only after STARTTLS and a login (like a provider's port
    587); its self-signed certificate is the one the process trusts (SSL_CERT_FILE)."""
    cert_path, key_path = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    received: list[Any] = []

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    port = processes.free_port()
    controller = Controller(
        Collect(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def test_production_refuses_a_mail_server_on_another_host_without_tls() -> None:
    def problems(**values: Any) -> dict[str, str]:
        settings = Settings(
            ONECART_ENV="production", ONECART_PUBLIC_URL="https://shop.example.com", **values
        )
        return production_problems(settings)

    assert "SMTP_SECURITY" in problems(SMTP_HOST="smtp.example.com", SMTP_PORT=25)
    assert "SMTP_SECURITY" not in problems(
        SMTP_HOST="smtp.example.com", SMTP_PORT=587, SMTP_SECURITY="starttls"
    )
    assert "SMTP_SECURITY" not in problems(
        SMTP_HOST="smtp.example.com", SMTP_PORT=465, SMTP_SECURITY="ssl"
    )
    # A relay on this machine (which itself sends on over TLS) needs none.
    assert "SMTP_SECURITY" not in problems(SMTP_HOST="127.0.0.1")


def test_a_reset_link_goes_out_over_starttls_after_a_login(
    tls_mailbox: tuple[int, list[Any]], make_user: Callable[..., User]
) -> None:
    port, received = tls_mailbox
    mail = MailSettings(
        host="127.0.0.1",
        port=port,
        sender="OneCart <shop@example.com>",
        security="starttls",
        username=USERNAME,
        password=PASSWORD,
    )
    user = make_user()
    assert send_email(reset_email(user, "https://shop.example.com/password/reset/t", mail), mail)
    assert received and received[0]["To"] == user.email


def test_a_wrong_mail_password_sends_nothing(
    tls_mailbox: tuple[int, list[Any]], make_user: Callable[..., User]
) -> None:
    port, received = tls_mailbox
    mail = MailSettings(
        host="127.0.0.1",
        port=port,
        sender="OneCart <shop@example.com>",
        security="starttls",
        username=USERNAME,
        password="not-the-password",
    )
    user = make_user()
    assert not send_email(reset_email(user, "https://shop.example.com/r", mail), mail)
    assert not received


def test_notifications_go_out_over_starttls_after_a_login(
    tls_mailbox: tuple[int, list[Any]],
    make_user: Callable[..., User],
    db_session: Session,
    storefront_db_url: str,
    settings: Settings,
) -> None:
    port, received = tls_mailbox
    user = make_user()
    notification = Notification(user_id=user.id, kind="price_alert", message="Cheaper now.")
    db_session.add(notification)
    db_session.commit()
    mail_settings = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "starttls",
            "smtp_username": USERNAME,
            "smtp_password": PASSWORD,
        }
    )
    factory = get_session_factory(storefront_db_url)
    assert send_notification_emails(factory, mail_settings, [notification.id]) == 1
    assert received and received[0]["To"] == user.email
