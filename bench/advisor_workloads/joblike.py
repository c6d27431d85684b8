"""A TPC-DS-like star schema, join-heavy: sales (1.5M at scale 1) with date, store, item, customer, promotion.

The fact table is loaded in date order (``date_id`` grows with ``id``, as a nightly load does) and
references every dimension; items roll up to brand and category, stores to city, state and region
(denormalised dimensions: a star, not a snowflake).  Reads join the fact table to two or three
dimensions filtered on their attributes; one write, the day's new sales.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from advisor_workloads import Shape, Workload, rows

DAYS = 1461  # 2022-01-01 .. 2025-12-31
FIRST = date(2022, 1, 1)
STATES = 40
CITIES = 400
BRANDS = 500
CATEGORIES = 20


def counts(scale: float) -> dict[str, int]:
    return {
        "store": rows(200, scale, floor=20),
        "item": rows(50_000, scale),
        "customer": rows(200_000, scale),
        "promotion": 500,
        "sales": rows(1_500_000, scale),
    }


def schema(scale: float) -> str:
    c = counts(scale)
    st, it, cu, pr, sa = c["store"], c["item"], c["customer"], c["promotion"], c["sales"]
    return f"""
CREATE TABLE date_dim (id int PRIMARY KEY, d_date date NOT NULL, year int NOT NULL, month int NOT NULL,
                       dow int NOT NULL, holiday boolean NOT NULL);
INSERT INTO date_dim SELECT g, d, extract(year FROM d), extract(month FROM d), extract(isodow FROM d),
       (extract(month FROM d), extract(day FROM d)) IN ((1, 1), (5, 1), (7, 14), (12, 25), (11, 11))
  FROM (SELECT g, date '2022-01-01' + (g - 1) AS d FROM generate_series(1, {DAYS}) g) s;
CREATE TABLE store (id int PRIMARY KEY, name text NOT NULL, city text NOT NULL, state text NOT NULL,
                    region text NOT NULL);
INSERT INTO store SELECT g, 'store ' || g, 'city ' || (g % {CITIES}), 'S' || (g % {STATES}),
       (ARRAY['north','south','east','west'])[1 + g % 4] FROM generate_series(1, {st}) g;
CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL, brand text NOT NULL, category text NOT NULL,
                   class text NOT NULL, price numeric(10,2) NOT NULL);
INSERT INTO item SELECT g, 'item ' || g, 'brand ' || (g * 7 % {BRANDS}),
       'category ' || (g * 7 % {BRANDS} % {CATEGORIES}),
       'class ' || (g % 100), 1 + (g * 7919 % 50000) / 100.0 FROM generate_series(1, {it}) g;
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, segment text NOT NULL, birth_year int NOT NULL,
                       city text NOT NULL, state text NOT NULL);
INSERT INTO customer SELECT g, 'customer ' || g, (ARRAY['retail','student','senior','business'])[1 + g % 4],
       1940 + g * 31 % 65, 'city ' || (g * 13 % {CITIES}), 'S' || (g * 13 % {CITIES} % {STATES})
  FROM generate_series(1, {cu}) g;
CREATE TABLE promotion (id int PRIMARY KEY, channel text NOT NULL, discount numeric(4,2) NOT NULL);
INSERT INTO promotion SELECT g, (ARRAY['tv','email','web','radio','none'])[1 + g % 5], (g % 30) / 100.0
  FROM generate_series(1, {pr}) g;
CREATE TABLE sales (id bigint PRIMARY KEY, date_id int NOT NULL, store_id int NOT NULL, item_id int NOT NULL,
                    customer_id int NOT NULL, promo_id int NOT NULL, quantity int NOT NULL,
                    amount numeric(12,2) NOT NULL);
INSERT INTO sales SELECT g, 1 + ((g - 1) * {DAYS}::bigint / {sa})::int, 1 + g * 7 % {st}, 1 + g * 7919 % {it},
       1 + g * 104729 % {cu}, 1 + g * 13 % {pr}, 1 + g % 9, (1 + g % 9) * (1 + (g * 7919 % 50000) / 100.0)
  FROM generate_series(1::bigint, {sa}) g;
CREATE SEQUENCE sales_id_seq START {sa + 1} OWNED BY sales.id;
ALTER TABLE sales ALTER id SET DEFAULT nextval('sales_id_seq');
"""  # noqa: S608 - numbers and this module's fixed lists only


def shapes(scale: float) -> list[Shape]:
    c = counts(scale)
    st, it, cu, pr = c["store"], c["item"], c["customer"], c["promotion"]

    def day_id(r: random.Random, lo: int = 1, hi: int = DAYS) -> int:
        return r.randint(lo, hi)

    def brand_month(r: random.Random) -> tuple[Any, ...]:
        return (f"brand {r.randrange(BRANDS)}", r.randint(2022, 2025), r.randint(1, 12))

    def week(r: random.Random) -> tuple[Any, ...]:
        d = FIRST + timedelta(days=r.randint(0, DAYS - 8))
        return (d, d + timedelta(days=6))

    def state_days(r: random.Random) -> tuple[Any, ...]:
        d = day_id(r, 1, DAYS - 7)
        return (f"S{r.randrange(STATES)}", d, d + 6)

    def category_days(r: random.Random) -> tuple[Any, ...]:
        d = day_id(r, 1, DAYS - 3)
        return (f"category {r.randrange(CATEGORIES)}", d, d + 2)

    def category_brand(r: random.Random) -> tuple[Any, ...]:
        b = r.randrange(BRANDS)
        return (f"category {b % CATEGORIES}", f"brand {b}")

    def city_years(r: random.Random) -> tuple[Any, ...]:
        y = r.randint(1940, 1995)
        return (f"city {r.randrange(CITIES)}", y, y + 9)

    def new_sale(r: random.Random) -> tuple[Any, ...]:
        q = r.randint(1, 9)
        return (DAYS, r.randint(1, st), r.randint(1, it), r.randint(1, cu), r.randint(1, pr), q, Decimal(q) * 3)

    return [
        Shape(
            "brand sales per store in a month",
            "SELECT s.store_id, sum(s.amount) FROM sales s JOIN item i ON i.id = s.item_id"
            " JOIN date_dim d ON d.id = s.date_id WHERE i.brand = $1 AND d.year = $2 AND d.month = $3"
            " GROUP BY s.store_id",
            brand_month,
            10,
        ),
        Shape(
            "customer purchase history",
            "SELECT d.d_date, i.category, s.amount FROM sales s JOIN date_dim d ON d.id = s.date_id"
            " JOIN item i ON i.id = s.item_id WHERE s.customer_id = $1 ORDER BY d.d_date DESC LIMIT 20",
            lambda r: (r.randint(1, cu),),
            30,
        ),
        Shape(
            "store day report by category",
            "SELECT i.category, sum(s.quantity), sum(s.amount) FROM sales s JOIN item i ON i.id = s.item_id"
            " WHERE s.store_id = $1 AND s.date_id = $2 GROUP BY i.category",
            lambda r: (r.randint(1, st), day_id(r)),
            20,
        ),
        Shape(
            "promotion channels in a week",
            "SELECT p.channel, count(*), sum(s.amount) FROM sales s JOIN promotion p ON p.id = s.promo_id"
            " JOIN date_dim d ON d.id = s.date_id WHERE d.d_date BETWEEN $1 AND $2 GROUP BY p.channel",
            week,
            5,
        ),
        Shape(
            "segments of a state's stores in a week",
            "SELECT c.segment, sum(s.amount) FROM sales s JOIN customer c ON c.id = s.customer_id"
            " JOIN store st ON st.id = s.store_id WHERE st.state = $1 AND s.date_id BETWEEN $2 AND $3"
            " GROUP BY c.segment",
            state_days,
            5,
        ),
        Shape(
            "items of a brand in a category",
            "SELECT id, name, price FROM item WHERE category = $1 AND brand = $2",
            category_brand,
            20,
        ),
        Shape(
            "customers of a city by birth decade",
            "SELECT count(*) FROM customer WHERE city = $1 AND birth_year BETWEEN $2 AND $3",
            city_years,
            10,
        ),
        Shape(
            "top items of a category over 3 days",
            "SELECT s.item_id, sum(s.quantity) AS q FROM sales s JOIN item i ON i.id = s.item_id"
            " WHERE i.category = $1 AND s.date_id BETWEEN $2 AND $3 GROUP BY s.item_id ORDER BY q DESC LIMIT 10",
            category_days,
            5,
        ),
        Shape(
            "holiday sales per region in a year",
            "SELECT st.region, sum(s.amount) FROM sales s JOIN date_dim d ON d.id = s.date_id"
            " JOIN store st ON st.id = s.store_id WHERE d.holiday AND d.year = $1 GROUP BY st.region",
            lambda r: (r.randint(2022, 2025),),
            2,
        ),
        Shape(
            "sales of an item with its promotions",
            "SELECT s.date_id, s.quantity, p.channel FROM sales s JOIN promotion p ON p.id = s.promo_id"
            " WHERE s.item_id = $1 ORDER BY s.date_id DESC LIMIT 50",
            lambda r: (r.randint(1, it),),
            20,
        ),
        Shape(
            "record a sale (INSERT)",
            "INSERT INTO sales (date_id, store_id, item_id, customer_id, promo_id, quantity, amount)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            new_sale,
            20,
            write=True,
        ),
    ]


# EXPERT: written first, before asymm's advisor was ever run on this workload (2026-12-02): the
# foreign keys of the fact table that the selective reads enter by (item, customer), a composite
# (date_id, store_id) for the store-day report that also serves every date range, and the
# dimension filters that are selective (item brand, customer city + birth year).  No index on the
# small dimensions (date_dim, store, promotion: a few hundred rows) nor on item.category (1 in 20).
EXPERT = [
    "CREATE INDEX expert_sales_item ON sales (item_id)",
    "CREATE INDEX expert_sales_customer ON sales (customer_id)",
    "CREATE INDEX expert_sales_date_store ON sales (date_id, store_id)",
    "CREATE INDEX expert_item_brand ON item (brand)",
    "CREATE INDEX expert_customer_city_birth ON customer (city, birth_year)",
]

WORKLOAD = Workload(
    name="joblike",
    description="TPC-DS-like star: sales 1.5M, customer 200k, item 50k, date_dim 1.5k, store 200,"
    " promotion 500 (scale 1)",
    schema=schema,
    shapes=shapes,
    expert=EXPERT,
)
