# The pages a buyer sees on this service (external checkout's review page, the retry page),
# English.

review-title = Review your order
review-order = Order
review-item = Item
review-quantity = Qty
review-amount = Amount
review-total = Total
review-pay = Pay with KOMOJU
retry-title = Payment status pending
retry-heading = We could not confirm your payment yet
retry-detail = KOMOJU could not be reached just now.
retry-reload = Nothing was lost. Please reload this page in a moment.

# The external-checkout button on the mall's pages (static/external-checkout/app.js).
button-pay = Pay with KOMOJU
button-failed = The payment could not be started. Please try again.
button-reserve = Your order could not be reserved. Please check your cart and try again.
