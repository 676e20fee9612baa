"""The reconciler's errors::

    ReconcileError         the reconciler cannot read or repair (service down, unknown SKU): exit 2

Bad settings are `worker.errors.ConfigError`, which the reconciler's settings raise.
"""


class ReconcileError(Exception):
    """The reconciler could not read or repair a SKU; nothing half-done is left behind."""
