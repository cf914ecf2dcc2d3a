"""A shop schema for subset tests: a lookup kept whole, users filtered by a condition with a
self-reference set to NULL when its target is dropped and a unique e-mail, orders with a
composite key and a NULL key, items referencing them by the composite key and shipments
referencing the items (a four-level chain), a partitioned table, a table with an odd
quoted name, a big table filtered by a share, and codes whose key is unique with NULLS
NOT DISTINCT (PostgreSQL 15 or later), and claims holding NULL keys into a partitioned
table that has no partition."""

SCHEMA = """
CREATE TABLE public.countries (code text PRIMARY KEY);
INSERT INTO public.countries VALUES ('DE'), ('FR'), ('XX');

CREATE TABLE public.users (
    id int PRIMARY KEY, country text REFERENCES public.countries, created_at date NOT NULL,
    referrer_id int REFERENCES public.users, email text NOT NULL UNIQUE);
INSERT INTO public.users
SELECT g, CASE WHEN g = 9 THEN 'XX' ELSE 'DE' END, date '2026-01-01' + (g * 30), NULL,
       'shopper' || g || '@leak-mail.example'
FROM generate_series(1, 10) g;
UPDATE public.users SET referrer_id = 2 WHERE id = 7;  -- referrer dropped: set to NULL
UPDATE public.users SET referrer_id = 6 WHERE id = 8;  -- referrer kept: stays

CREATE TABLE public.orders (
    id int, shop int, user_id int REFERENCES public.users, PRIMARY KEY (id, shop));
INSERT INTO public.orders SELECT u, s, u FROM generate_series(1, 10) u, generate_series(1, 2) s;
INSERT INTO public.orders VALUES (99, 1, NULL);  -- a NULL key points nowhere: kept

CREATE TABLE public.order_items (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, order_id int, shop int, sku text,
    FOREIGN KEY (order_id, shop) REFERENCES public.orders);
INSERT INTO public.order_items (order_id, shop, sku)
SELECT id, shop, 'SKU-' || id FROM public.orders ORDER BY id, shop;
INSERT INTO public.order_items (order_id, shop, sku)
VALUES (NULL, 1, 'loose');  -- a composite key with a NULL points nowhere: kept

-- the fourth level of the chain: users -> orders -> order_items -> shipments
CREATE TABLE public.shipments (
    id int PRIMARY KEY, item_id int NOT NULL REFERENCES public.order_items, carrier text);
INSERT INTO public.shipments SELECT id, id, 'DHL' FROM public.order_items;

-- a one-per-user code: a subset that set its key to NULL twice would break the unique
CREATE TABLE public.codes (
    id int PRIMARY KEY, owner_id int REFERENCES public.users,
    UNIQUE NULLS NOT DISTINCT (owner_id));
INSERT INTO public.codes SELECT g, g FROM generate_series(1, 10) g;

CREATE TABLE public.events (id int, user_id int REFERENCES public.users, at date NOT NULL)
    PARTITION BY RANGE (at);
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_2027 PARTITION OF public.events
    FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO public.events
SELECT g, 1 + g % 10, date '2026-01-01' + g FROM generate_series(1, 600) g;

-- a partitioned table with no partition yet (so no COPY in the archive) holding a key into
-- users, and claims whose key into it is NULL: they point nowhere and stay
CREATE TABLE public.refunds (id int, at date, user_id int REFERENCES public.users,
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.claims (id int PRIMARY KEY, refund_id int, refund_at date,
    FOREIGN KEY (refund_id, refund_at) REFERENCES public.refunds);
INSERT INTO public.claims SELECT g, NULL, NULL FROM generate_series(1, 5) g;

CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Notes ""q"" x" (
    user_id int REFERENCES public.users, body text);
INSERT INTO "Odd Schema"."Notes ""q"" x"
SELECT 1 + g % 10, 'note' FROM generate_series(1, 50) g;

-- two tables whose names print alike in `pg_restore --list` ("s a b postgres"): the child
-- s."a b" sorts first in the archive and references the filtered parent "s a".b
CREATE SCHEMA s;
CREATE SCHEMA "s a";
CREATE TABLE "s a".b (id int PRIMARY KEY, contact text);
INSERT INTO "s a".b SELECT g, 'buyer' || g || '@pair-mail.example' FROM generate_series(1, 10) g;
CREATE TABLE s."a b" (id int PRIMARY KEY, b_id int REFERENCES "s a".b);
INSERT INTO s."a b" SELECT g, 1 + g % 10 FROM generate_series(1, 40) g;

CREATE TABLE public.big (id int PRIMARY KEY, pad text);
INSERT INTO public.big SELECT g, repeat('x', 20) FROM generate_series(1, 30000) g;
"""

RULES = """\
unlisted_columns: keep
subset:
  tables:
    public.users: {where: "created_at >= date '2026-06-01' AND country <> 'XX'"}
    public.big: {percent: 10}
    '"s a".b': {where: "id <= 3"}
  keep_whole: [public.countries]
  set_null: [public.users.referrer_id]
"""
KEPT_USERS = "created_at >= date '2026-06-01' AND country <> 'XX'"
