"""DunningWorkflow: from a failed payment to cash, a cancelled subscription or a write-off."""

from __future__ import annotations

from temporalio import workflow

from o2c.workflows.process import ProcessWorkflow

with workflow.unsafe.imports_passed_through():
    from o2c.canonical.dunning import DunningPolicies
    from o2c.canonical.models import Model, PaymentEvent

PAYMENT_EVENT_SIGNAL = "payment_event"


def dunning_workflow_id(invoice_id: str) -> str:
    return f"dunning-{invoice_id}"


class DunningInput(Model):
    invoice_id: str
    account_id: str = ""
    subscription_id: str = ""
    policies: DunningPolicies = DunningPolicies()


@workflow.defn
class DunningWorkflow(ProcessWorkflow):
    process = "dunning"

    def __init__(self) -> None:
        super().__init__()
        self.inbox: list[PaymentEvent] = []

    @workflow.signal(name=PAYMENT_EVENT_SIGNAL)
    def payment_event(self, event: PaymentEvent) -> None:
        self.inbox.append(event)

    @workflow.run
    async def run(self, input: DunningInput) -> str:  # replaced by the full process
        await workflow.wait_condition(lambda: False)
        return ""
