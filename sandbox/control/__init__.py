"""The sandbox's control plane under `/_sandbox/`: reset, seed (a customer and a
subscription, or a whole reconciliation period), accounting periods, faults, summary,
raw records and the Stripe world's events. Not part of any real system's protocol."""


class BadRequest(ValueError):
    """A malformed control request (answered 400)."""
