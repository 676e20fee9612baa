-- The trace id of an order whose client sent a W3C traceparent (flashgate/tracecontext.py), so one
-- buyer's complaint can be followed from the 202 to the row. NULL for an order sent without one:
-- its order id is its trace key. Nullable with no default, so adding it rewrites no rows.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS trace_id uuid;
ALTER TABLE refused_orders ADD COLUMN IF NOT EXISTS trace_id uuid;
