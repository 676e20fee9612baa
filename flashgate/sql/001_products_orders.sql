-- The system of record: products on sale, persisted orders, and orders the database refused.
-- I1 (no oversell) is enforced here as the last line: units_sold can never pass units_on_sale.

CREATE TABLE products (
    sku              text PRIMARY KEY CHECK (length(sku) BETWEEN 1 AND 64),
    name             text NOT NULL,
    units_on_sale    integer NOT NULL CHECK (units_on_sale >= 0),
    units_sold       integer NOT NULL DEFAULT 0,
    per_user_limit   integer CHECK (per_user_limit IS NULL OR per_user_limit > 0),
    starts_at        timestamptz,
    ends_at          timestamptz,
    rate_per_s       double precision CHECK (rate_per_s IS NULL OR rate_per_s > 0),
    burst            integer CHECK (burst IS NULL OR burst > 0),
    closed_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT units_sold_within_stock CHECK (units_sold >= 0 AND units_sold <= units_on_sale),
    CONSTRAINT window_ordered CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at)
);

CREATE TABLE orders (
    order_id         uuid PRIMARY KEY,
    sku              text NOT NULL REFERENCES products (sku),
    user_id          text NOT NULL,
    qty              integer NOT NULL CHECK (qty > 0),
    idempotency_key  text NOT NULL,
    accepted_at      timestamptz NOT NULL,
    persisted_at     timestamptz NOT NULL DEFAULT now(),
    kafka_partition  integer NOT NULL,
    kafka_offset     bigint NOT NULL,
    -- (sku, user_id) first so the same index serves per-SKU and per-buyer counts.
    CONSTRAINT one_order_per_key UNIQUE (sku, user_id, idempotency_key)
);

-- Orders that reached the database but could not be recorded without breaking I1.
-- Any row here is an incident: the gate admitted more than it should have.
CREATE TABLE refused_orders (
    order_id         uuid PRIMARY KEY,
    sku              text NOT NULL,
    user_id          text NOT NULL,
    qty              integer NOT NULL,
    idempotency_key  text NOT NULL,
    accepted_at      timestamptz NOT NULL,
    refused_at       timestamptz NOT NULL DEFAULT now(),
    reason           text NOT NULL,
    kafka_partition  integer NOT NULL,
    kafka_offset     bigint NOT NULL
);
