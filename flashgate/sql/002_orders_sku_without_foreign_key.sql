-- Drop the orders.sku -> products foreign key: its per-row check (a trigger querying products
-- for every inserted order) cost about a quarter of the worker's drain rate, and it guards
-- nothing the writer does not already guarantee:
--   * the writer locks each batch's product rows FOR UPDATE before inserting, and inserts an
--     order only when its SKU's row was found under that lock (worker/writer.py; an order for
--     an unknown SKU goes to refused_orders with reason unknown_sku);
--   * the row lock also keeps the product row from being deleted until the orders commit, and
--     nothing in flashgate deletes products rows (a sale is closed with closed_at, never deleted).
-- I1 stays enforced here by the CHECK units_sold_within_stock on products.
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_sku_fkey;
