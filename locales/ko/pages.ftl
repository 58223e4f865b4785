# The pages a buyer sees on this service (external checkout's review page, the retry page),
# Korean.

review-title = 주문 내용 확인
review-order = 주문 번호
review-item = 상품
review-quantity = 수량
review-amount = 금액
review-total = 합계
review-pay = KOMOJU로 결제하기
retry-title = 결제 확인 중
retry-heading = 아직 결제를 확인하지 못했습니다
retry-detail = 지금은 KOMOJU에 연결할 수 없습니다.
retry-reload = 잃어버린 것은 없습니다. 잠시 후 이 페이지를 새로 고침해 주세요.

# The external-checkout button on the mall's pages (static/external-checkout/app.js).
button-pay = KOMOJU로 결제
button-failed = 결제를 시작할 수 없었습니다. 다시 시도해 주세요.
button-reserve = 주문을 접수할 수 없었습니다. 장바구니를 확인한 후 다시 시도해 주세요.
