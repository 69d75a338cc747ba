"""Long-lived processes: the control-plane and executor workers, the embedded Temporal dev server and stack."""
