"""Usage to invoice: the events, their validation, the review before release and the booking."""
