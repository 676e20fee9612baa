"""`flashgate monitor`: exports what outlives the gate and worker processes (consumer lag, outbox)."""
