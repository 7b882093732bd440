"""What every process shares: status and search attributes, the step runner, the saga, the approval gate, the exception queue, booking."""
