CREATE INDEX orders_komoju_payment_id ON orders (komoju_payment_id);
