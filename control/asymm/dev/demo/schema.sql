-- A small online shop: enough tables, keys and skew for asymm to have something to say.
-- Sizes scale with the psql-style variable :scale (set by asymm.dev.demo.setup; 1 = 20k customers).
CREATE TABLE customers (
    customer_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    product_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category    text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0),
    attributes  jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE orders (
    order_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    status      text NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
    placed_at   timestamptz NOT NULL,
    total_cents bigint NOT NULL DEFAULT 0
);

CREATE TABLE order_items (
    order_id    bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
    line_no     integer NOT NULL,
    product_id  bigint NOT NULL REFERENCES products,
    quantity    integer NOT NULL CHECK (quantity > 0),
    price_cents integer NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE VIEW order_totals AS
SELECT o.order_id, o.customer_id, o.placed_at, sum(i.quantity * i.price_cents) AS total_cents
  FROM orders o JOIN order_items i USING (order_id)
 GROUP BY o.order_id;
