DROP INDEX orders_mall_created;
