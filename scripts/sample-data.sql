-- Sample data for the demo and the tests: several schemas, a partitioned table, a name
-- with spaces and capitals, foreign keys, a sequence, a view, and personal data to scrub.
CREATE SCHEMA sales;

CREATE TABLE public.customers (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    full_name text NOT NULL,
    phone text,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.customers (email, full_name, phone, created_at)
SELECT 'user' || g || '@example.com', 'Customer ' || g || ' Ünïcödé', '+1-555-' || lpad(g::text, 4, '0'),
       timestamptz '2025-01-01' + g * interval '1 hour'
FROM generate_series(1, 2000) AS g;

CREATE TABLE sales.orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    amount_cents integer NOT NULL CHECK (amount_cents >= 0),
    placed_on date NOT NULL
) ;
INSERT INTO sales.orders (customer_id, amount_cents, placed_on)
SELECT 1 + (g % 2000), (g * 37) % 100000, date '2025-01-01' + (g % 365)
FROM generate_series(1, 5000) AS g;

CREATE TABLE sales.events (
    id bigint NOT NULL,
    happened date NOT NULL,
    payload jsonb
) PARTITION BY RANGE (happened);
CREATE TABLE sales.events_2025h1 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2025-07-01');
CREATE TABLE sales.events_2025h2 PARTITION OF sales.events FOR VALUES FROM ('2025-07-01') TO ('2026-01-01');
INSERT INTO sales.events
SELECT g, date '2025-01-01' + (g % 365), jsonb_build_object('n', g)
FROM generate_series(1, 3000) AS g;

CREATE TABLE public."Mixed Case table" ("Key" int PRIMARY KEY, "Value" text);
INSERT INTO public."Mixed Case table" SELECT g, md5(g::text) FROM generate_series(1, 100) AS g;

CREATE TABLE public.empty_table (id int);

CREATE VIEW sales.order_totals AS
SELECT customer_id, sum(amount_cents) AS total_cents FROM sales.orders GROUP BY customer_id;

CREATE SCHEMA "odd.schema";
CREATE TABLE "odd.schema"."dotted.table" (id int PRIMARY KEY, "quote""d" text);
INSERT INTO "odd.schema"."dotted.table" SELECT g, 'x' || g FROM generate_series(1, 7) AS g;
