"""The business processes, one module each, and the kit they share (saga, approval, exception queue)."""
