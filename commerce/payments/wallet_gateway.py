"""The wallet as a payment gateway: the shopper's ledger is the provider.

Authorizing debits the ledger at once (there is no "hold" in a ledger), so a wallet payment is
captured from the start; refunds are credits. Ledger references are the gateway's idempotency
keys, and (kind, reference) is unique in the ledger, so a retried debit or refund never counts
twice. Everything happens in the caller's DB session and transaction.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.models import User, WalletEntry, WalletEntryKind
from commerce.order_models import PaymentMethod
from commerce.payments.gateway import (
    Authorization,
    AuthorizationRequest,
    FoundRefund,
    FoundRefundStatus,
    PaymentDeclined,
    ProviderPaymentState,
    ProviderStatus,
    UncapturedAuthorization,
)
from commerce.wallet import InsufficientFunds, WalletError, pay_from_wallet, refund_to_wallet
from onecart.money import Money


class WalletGateway:
    """Pay from (and refund to) one shopper's wallet, inside the caller's transaction."""

    method = PaymentMethod.WALLET

    def __init__(self, session: Session, user: User) -> None:
        self.session = session
        self.user = user

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        """Debit the wallet; PaymentDeclined (with the balance problem) when it cannot."""
        try:
            receipt = pay_from_wallet(
                self.session, self.user, request.amount, reference=request.idempotency_key
            )
        except InsufficientFunds as exc:
            raise PaymentDeclined(
                "Your wallet balance does not cover this order. Top up your wallet or pay by card."
            ) from exc
        except WalletError as exc:
            raise PaymentDeclined(str(exc)) from exc
        return Authorization(
            provider_reference=receipt.entry.reference,
            amount_minor=-receipt.entry.amount_minor,
            currency=receipt.entry.currency,
            captured=True,
        )

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        """Nothing to do: the debit already moved the money."""

    def refund(
        self,
        provider_reference: str,
        amount: Money,
        *,
        idempotency_key: str,
        reference: str | None = None,
        description: str = "Refund",
    ) -> str:
        """Credit `amount` back. The ledger reference is `<debit reference>:<idempotency key>`,
        so the credits of one payment can be summed and a retried refund is the same line (a
        wallet refund is never sent as numbered attempts: `reference` is its key)."""
        receipt = refund_to_wallet(
            self.session,
            self.user,
            amount,
            reference=_credit_reference(provider_reference, idempotency_key),
            description=description,
        )
        return receipt.entry.reference

    def void(self, provider_reference: str, *, attempt: int | None = 0) -> None:
        """Credit back whatever of the debit has not been refunded yet. `attempt` changes
        nothing: the ledger stores no refusal under a reference, only the line it wrote."""
        state = self.retrieve(provider_reference)
        remaining = state.amount_minor - state.refunded_minor
        if remaining > 0:
            self.refund(
                provider_reference, Money(remaining, state.currency), idempotency_key="void"
            )

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        """The ledger line of that refund, if it was written (a credit never fails later)."""
        entry = self.session.scalar(
            sa.select(WalletEntry.reference).where(
                WalletEntry.kind == WalletEntryKind.REFUND,
                WalletEntry.reference == _credit_reference(provider_reference, reference),
            )
        )
        return None if entry is None else FoundRefund(entry, FoundRefundStatus.DONE, "credited")

    def find_authorizations(self, idempotency_key: str) -> list[ProviderPaymentState]:
        """Never in doubt: the wallet debit is written in the order's own transaction, so it
        exists exactly when the order does."""
        return []

    def find_uncaptured_authorizations(
        self, created_before: datetime
    ) -> list[UncapturedAuthorization]:
        """None: a ledger holds nothing, a debit is taken at once (and written with its order)."""
        return []

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        """The debit and the credits recorded against it, from the ledger."""
        debit = self.session.scalar(
            sa.select(WalletEntry).where(
                WalletEntry.kind == WalletEntryKind.PAYMENT,
                WalletEntry.reference == provider_reference,
            )
        )
        if debit is None:
            return ProviderPaymentState(
                provider_reference, ProviderStatus.FAILED, 0, 0, 0, self.user.wallet_currency
            )
        prefix = _credit_reference(provider_reference, "")
        credited = self.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(WalletEntry.amount_minor), 0)).where(
                WalletEntry.kind == WalletEntryKind.REFUND,
                WalletEntry.user_id == self.user.id,
                # A prefix match without LIKE: references may contain LIKE's wildcards.
                sa.func.substr(WalletEntry.reference, 1, len(prefix)) == prefix,
            )
        )
        amount = -debit.amount_minor
        return ProviderPaymentState(
            provider_reference=provider_reference,
            status=ProviderStatus.CAPTURED,
            amount_minor=amount,
            captured_minor=amount,
            refunded_minor=int(credited or 0),
            currency=debit.currency,
            captured_on_record_minor=amount,
        )


def _credit_reference(provider_reference: str, idempotency_key: str) -> str:
    return f"{provider_reference}:{idempotency_key}"
