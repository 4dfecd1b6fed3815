-- Statistics on the destination that delivery_performance groups by (issue 10, benchmark 7).
-- The destination is read from orders.raw, and the planner has no statistics for an expression
-- over jsonb: it guessed that 0.5 % of a type's completed orders go to destination_country 'US'
-- (the cookbook's delivery-by-state filter; really nearly all), and probed order_stage_times once
-- per order in a nested loop instead of joining by hash. Extended statistics on the two
-- expressions give it their real distribution at the next ANALYZE (autovacuum runs one), at no
-- cost to any write. The expressions are the view's, character for character: the planner
-- matches them by their text.
CREATE STATISTICS mailtrail.orders_destination_stats ON
    (coalesce(raw -> 'to' ->> 'countryCode', raw -> 'to' -> 'address' ->> 'countryCode')),
    (coalesce(raw -> 'to' ->> 'provinceOrState', raw -> 'to' -> 'address' ->> 'provinceOrState'))
FROM mailtrail.orders;

ANALYZE mailtrail.orders;
