DROP TABLE order_events;
DROP TABLE orders;
DROP TABLE merchant_shops;
DROP TABLE merchants;
