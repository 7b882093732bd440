"""Booking an invoice across billing, tax and the ERP, with the undo of every step.

Amendments and renewals both quote tax, create and finalise an invoice that carries the
tax, commit the tax document under the invoice's ID, post the balanced journal entry,
give the customer what they bought, and tell them. This base class does those steps once.

Dating (DOMAIN.md, "Dating a booking"): since o2c-ledger every document of a booking carries
the billing invoice's date, the day billing created it: the tax document's date (the tax
point) and the entry's posting date (the day the receivable arises). The effective date or
the term start drives proration and revenue, never the date of a document: an amendment
effective in a month the ERP has closed is booked in the month its invoice is issued in, and
its revenue for the closed month is caught up by the revenue posting of the first open one.
Runs that started before the release dated every document with the effective date.
"""

from __future__ import annotations

import functools
from datetime import date

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.entitlements import EntitlementActivities
    from activities.erp import ErpActivities
    from activities.inputs import CreateInvoice, SendNotification, SetSeats, TaxRequest, UpsertErpCustomer, VoidInvoice
    from activities.notifications import NotificationActivities
    from activities.tax import TaxActivities
    from canonical.journal import ChartOfAccounts, JournalEntry, invoice_entry
    from canonical.models import (
        DEFAULT_ENTITIES,
        TAX_PRODUCT,
        Account,
        Invoice,
        InvoiceLine,
        JournalEntryRef,
        LegalEntity,
        Notification,
        TaxDocument,
    )
    from canonical.money import Money, total
    from workflows.kit.process import RELEASE_CASH, ProcessWorkflow, StepFailed


class BookingWorkflow(ProcessWorkflow):
    def __init__(self) -> None:
        super().__init__()
        self.invoice: Invoice | None = None
        self.tax_document: TaxDocument | None = None
        self.journal_entry: JournalEntryRef | None = None
        self.account: Account | None = None
        # The invoice's date when a process knows it before quoting (a draft billing made).
        self.issued_on: date | None = None
        # The legal entities of the deployment, set by the process from its input: the
        # customer's entity names the tax company its documents are filed in.
        self.legal_entities: list[LegalEntity] = []

    # -- tax quote ---------------------------------------------------------------------------

    def tax_point(self, effective: date) -> date:
        """The date the tax is quoted at and the tax line names: the day the invoice is about
        to be issued (before o2c-ledger: the effective date)."""
        if not self.release_ledger():
            return effective
        return self.issued_on or workflow.now().date()

    def invoice_date(self, effective: date) -> date:
        """The date of every document of the booking once billing created the invoice: the
        invoice's own date (billing's `created`, a UTC day). Before o2c-ledger: the effective date."""
        if not self.release_ledger():
            return effective
        assert self.invoice is not None
        return self.invoice.created or workflow.now().date()

    async def quote_tax(
        self, account_id: str, currency: str, document_date: date, lines: list[InvoiceLine]
    ) -> TaxDocument | None:
        """An AvaTax SalesOrder: records nothing. None when an operator skipped it.
        `document_date` is the effective date; the quote is dated by tax_point()."""
        self.set_stage("quoting tax")
        document_date = self.tax_point(document_date)

        async def quote() -> TaxDocument:
            # Read the customer master on every attempt: a retry after an operator fixed
            # the address must see the fix.
            self.account = await self.forward(BillingActivities.get_account, account_id)
            if self.account is None:
                raise StepFailed(f"customer {account_id} does not exist in billing")
            return await self.forward(TaxActivities.quote, self.tax_request(currency, document_date, lines))

        return await self.step("tax quote", quote)

    def tax_request(self, currency: str, document_date: date, lines: list[InvoiceLine]) -> TaxRequest:
        assert self.account is not None
        return TaxRequest(
            code=f"{workflow.info().workflow_id}-quote",
            customer_code=self.account.id,
            document_date=document_date,
            currency=currency,
            address=self.account.billing_address,
            lines=lines,
            company_code=self.booking_entity().company_code if self.release_ledger() else "",
        )

    def booking_entity(self) -> LegalEntity:
        """The legal entity of the customer the process books for."""
        assert self.account is not None
        return self.entity_for(self.legal_entities or DEFAULT_ENTITIES, self.account.legal_entity)

    # -- invoice, tax document, journal entry ---------------------------------------------

    async def book_invoice(
        self,
        *,
        account_id: str,
        subscription_id: str,
        currency: str,
        document_date: date,
        charged: list[InvoiceLine],
        quote: TaxDocument | None,
        description: str,
        metadata: dict[str, str],
        entity: LegalEntity,
        chart: ChartOfAccounts,
        memo: str,
        billing_account: str = "",
    ) -> None:
        wid = workflow.info().workflow_id
        effective = document_date
        tax = quote.total_tax if quote else Money.zero(currency)
        lines = charged + (
            [InvoiceLine(product=TAX_PRODUCT, description=f"Sales tax ({self.tax_point(effective)})", amount=tax)]
            if not tax.is_zero
            else []
        )
        self.set_stage(f"invoicing: {description}")
        create = CreateInvoice(
            account_id=account_id,
            subscription_id=subscription_id,
            currency=currency,
            lines=lines,
            description=description,
            # Since o2c-ledger the invoice names its legal entity, so the reconciliation of
            # each entity on a shared billing account takes its own invoices.
            metadata={
                "o2c_workflow": wid,
                **metadata,
                **({"legal_entity": entity.code} if self.release_ledger() else {}),
            },
            billing_account=billing_account,
        )
        self.saga.add("invoice", lambda: self._void_invoice(create))
        self.invoice = await self.step(
            "invoice", lambda: self.forward(BillingActivities.create_invoice, create), skippable=False
        )
        assert self.invoice is not None
        self.tag(invoice=self.invoice.id)
        document_date = self.invoice_date(effective)

        if quote is not None:
            self.set_stage(f"committing tax for invoice {self.invoice.id}")
            commit = self.tax_request(currency, document_date, charged).model_copy(update={"code": self.invoice.id})
            self.saga.add("tax document", lambda: self.undo(TaxActivities.void, commit.code))
            self.tax_document = await self.step("tax commit", lambda: self.forward(TaxActivities.commit, commit))
            if self.tax_document and self.tax_document.total_tax != tax:
                self.note(
                    f"warning: AvaTax committed {self.tax_document.total_tax} "
                    f"but the invoice charged {tax}; the ledger follows the invoice"
                )

        revenue = total((x.amount for x in charged), currency)
        if revenue.is_zero and tax.is_zero:
            self.note("nothing to post: the invoice nets to zero")
            return
        self.set_stage("posting the journal entry")
        entry = invoice_entry(
            external_id=f"{wid}-invoice",
            subsidiary=entity.erp_subsidiary,
            posting_date=document_date,
            memo=f"{memo}, invoice {self.invoice.id}",
            revenue=revenue,
            tax=tax,
            chart=chart,
            invoice_id=self.invoice.id,
            customer=account_id,
        )
        if workflow.patched(RELEASE_CASH) and self.account is not None and self.account.id == account_id:
            # The entry's receivable names the customer, so the ERP must know the customer
            # first (an upsert by external id: repeating it changes nothing). A customer moved
            # to another legal entity was upserted there when it moved.
            upsert = UpsertErpCustomer(account=self.account, subsidiary=entity.erp_subsidiary)
            await self.step("ERP customer", lambda: self.forward(ErpActivities.upsert_customer, upsert))
        reversal = entry.reversal(f"{wid}-invoice-reversal", document_date)
        self.saga.add("journal entry", lambda: self._reverse(entry, reversal))
        self.journal_entry = await self.step(
            "journal entry", lambda: self.forward(ErpActivities.post_journal_entry, entry)
        )

    async def _void_invoice(self, create: CreateInvoice) -> None:
        invoice = self.invoice
        if invoice is None:
            if "invoice" not in self.unsettled:
                return  # billing refused the create: there is nothing to void
            # Billing never answered (an operator aborted while it was unreachable).
            # Replaying the same idempotency key returns the invoice if it was made.
            invoice = await self.undo(BillingActivities.create_invoice, create)
        self.invoice = await self.undo(
            BillingActivities.void_invoice, VoidInvoice(invoice_id=invoice.id, billing_account=create.billing_account)
        )

    async def _reverse(self, entry: JournalEntry, reversal: JournalEntry) -> None:
        if self.journal_entry is None:
            if "journal entry" not in self.unsettled:
                return  # the ERP refused the entry: there is nothing to reverse
            # The ERP never answered: look before reversing.
            if await self.undo(ErpActivities.get_journal_entry, entry.external_id) is None:
                return
        # The reversal has its own external ID, so posting it again changes nothing.
        await self.undo(ErpActivities.post_journal_entry, reversal)

    # -- what the customer gets ------------------------------------------------------------

    async def set_seats(self, account_id: str, seats: dict[str, int], before: dict[str, int]) -> None:
        """Only with the money booked does the customer get the seats. If the entitlement
        cannot be changed, the booking is undone with it: nobody pays for what they lack."""
        for product, quantity in seats.items():
            if before.get(product) == quantity:
                continue
            restore = SetSeats(
                account_id=account_id,
                product=product,
                seats=before.get(product, 0),
                step=f"entitlement-{product}-restore",
            )
            self.saga.add(
                f"entitlement {product}", functools.partial(self.undo, EntitlementActivities.set_seats, restore)
            )
            change = SetSeats(account_id=account_id, product=product, seats=quantity, step=f"entitlement-{product}")
            self.set_stage(f"setting {product} to {quantity} seats")
            await self.step(
                f"entitlement {product}", functools.partial(self.forward, EntitlementActivities.set_seats, change)
            )

    async def tell_customer(self, account_id: str, notice: Notification | None, step: str = "notify-customer") -> None:
        """After the point of no return: a failed notice waits for an operator, never undoes."""
        account = self.account or await self.step(
            "read customer", lambda: self.forward(BillingActivities.get_account, account_id), must_finish=True
        )
        if notice is None or not (account and account.email):
            return
        self.set_stage("notifying the customer")
        message = SendNotification(step=step, notification=notice.model_copy(update={"recipient": account.email}))
        await self.step("customer notice", lambda: self.forward(NotificationActivities.send, message), must_finish=True)
