# The pages a buyer sees on this service (external checkout's review page, the retry page),
# Japanese.

review-title = ご注文内容の確認
review-order = 注文番号
review-item = 商品
review-quantity = 数量
review-amount = 金額
review-total = 合計
review-pay = KOMOJU で支払う
retry-title = 決済の確認中
retry-heading = 決済をまだ確認できていません
retry-detail = ただいま KOMOJU に接続できませんでした。
retry-reload = 何も失われていません。しばらくしてからこのページを再読み込みしてください。

# The external-checkout button on the mall's pages (static/external-checkout/app.js).
button-pay = KOMOJU で支払う
button-failed = 決済を開始できませんでした。もう一度お試しください。
button-reserve = ご注文を確保できませんでした。カートの内容をご確認のうえ、もう一度お試しください。
