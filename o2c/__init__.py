"""o2c: a durable order-to-cash engine on Temporal."""
