# The settings site (PROTOCOL.md §12), Korean. Keys: settings-<field of routes::settings_pages::Texts>.

settings-title = KOMOJU 결제
settings-mall = 쇼핑몰
settings-test-mode = 테스트 모드: KOMOJU 테스트 키로 결제합니다. 실제 돈은 오가지 않습니다.
settings-live-mode = 라이브 모드: 실제 결제가 이루어집니다.
settings-not-set-up = KOMOJU가 아직 설정되지 않았습니다. 아래에 키를 저장한 뒤 쇼핑몰을 켜 주세요.
settings-komoju = KOMOJU 계정
settings-komoju-help = 키는 쓰기 전용입니다. 칸을 비워 두면 저장된 값이 유지됩니다. 새 시크릿 키는 저장하기 전에 KOMOJU에서 확인합니다.
settings-secret-key = 시크릿 키 (sk_live_… 또는 sk_test_…)
settings-webhook-secret = 웹훅 시크릿
settings-saved-hint = 저장됨:
settings-not-saved = 아직 저장되지 않음
settings-payment-types = 제공할 결제 수단
settings-cancel-mode = 취소
settings-cancel-sync = 동기 (Cafe24에 바로 응답)
settings-cancel-async = 비동기 (KOMOJU 확인 후 Cafe24에 알림)
settings-locale = KOMOJU 결제 페이지 언어
settings-review-page = 외부 결제에서 KOMOJU로 가기 전에 확인 페이지 표시
settings-save = 저장
settings-shops = 쇼핑몰
settings-shops-help = 쇼핑몰을 켜면 이 앱이 Cafe24에 결제 대행사로 등록됩니다. 외부 결제는 상품 페이지와 장바구니에 KOMOJU 버튼을 추가합니다.
settings-shop = 쇼핑몰
settings-currency = 통화
settings-gateway = 결제 대행
settings-external-checkout = 외부 결제
settings-on = 켜짐
settings-off = 꺼짐
settings-pending = Cafe24 확인 대기 중
settings-turn-on = 켜기
settings-turn-off = 끄기
settings-retry = 다시 시도
settings-webhook = KOMOJU 웹훅
settings-webhook-help = KOMOJU 대시보드에서 이 URL과 웹훅 시크릿으로 다음 이벤트를 구독하는 웹훅을 추가하세요:
settings-events = 이벤트
settings-last-ping = 마지막으로 받은 서명된 ping:
settings-never = 아직 없음
settings-send-test = 테스트 보내기
settings-disconnect = 연결 해제
settings-disconnect-help = Cafe24의 모든 쇼핑몰에서 결제 대행 등록과 버튼을 제거하고, 이 쇼핑몰에 대한 앱의 접근 권한을 삭제하며, 결제 받기를 중단합니다. 주문은 남습니다.
settings-disconnect-confirm = 이해했습니다: 모든 쇼핑몰에서 결제 대행과 버튼이 제거되고 결제 받기가 중단됩니다.
settings-done = 저장했습니다.
settings-disconnected = 연결이 해제되었습니다
settings-disconnected-help = 이 쇼핑몰은 더 이상 KOMOJU로 결제를 받지 않습니다. 다시 연결하려면 Cafe24 관리자에서 앱을 여세요.
settings-error-title = 문제가 발생했습니다
settings-read-only = 읽기 전용: 대표 운영자만 이 설정을 바꿀 수 있습니다.

# The settings site's refusals with a fixed text (install::settings::SiteError::code).
site-error-no-session = 세션이 끝났습니다. Cafe24 관리자에서 앱을 다시 여세요.
site-error-forbidden = 이 세션으로는 이 요청을 할 수 없습니다.
site-error-read-only = 대표 운영자만 이 설정을 바꿀 수 있습니다. 보기는 가능합니다.
site-error-not-connected = 이 쇼핑몰에 앱이 연결되어 있지 않습니다. Cafe24 관리자에서 앱을 다시 여세요.
site-error-unknown-shop = 이 쇼핑몰에 그런 쇼핑몰 번호가 없습니다.
site-error-unavailable = 서비스를 잠시 사용할 수 없습니다. 잠시 후 다시 시도하세요.
site-error-internal = 저희 쪽에서 문제가 발생했습니다. 잠시 후 다시 시도하세요.

# The payments page (install::settings::payments).
settings-payments = 결제 목록
settings-payments-help = KOMOJU로 결제된 주문입니다 (최신순). 시간은 각 쇼핑몰의 시간대, 시작일과 종료일은 UTC 날짜입니다.
settings-filter-state = 상태
settings-filter-all = 전체
settings-filter-shop = 쇼핑몰 번호
settings-filter-from = 시작일
settings-filter-to = 종료일
settings-filter-order-id = 주문 번호
settings-filter-show = 보기
settings-col-order = 주문
settings-col-amount = 금액
settings-col-state = 상태
settings-col-payment-type = 결제 수단
settings-col-updated = 마지막 변경
settings-col-komoju = KOMOJU
settings-open-in-komoju = 열기
settings-next-page = 다음 페이지
settings-no-payments = 해당하는 결제가 없습니다.
settings-back-to-settings = 설정
settings-download-csv = CSV로 내려받기

# Order states as the payments page names them (orders::state::OrderState).
state-pending = 미결제
state-awaiting-payment = 입금 대기
state-authorized = 승인됨
state-paid = 결제 완료
state-amount-mismatch = 금액 불일치
state-partially-refunded = 부분 환불
state-refunded = 환불 완료
state-cancelled = 취소됨
state-expired = 만료됨
state-failed = 실패

# Field errors of the KOMOJU form (install::settings::FieldError), under their field.
site-error-field = 저장되지 않았습니다. 아래 표시된 항목을 수정하세요.
field-secret-key-missing = KOMOJU 시크릿 키를 입력하세요.
field-secret-key-format = KOMOJU 시크릿 키는 sk_live_ 또는 sk_test_로 시작하며 공백이 없습니다.
field-secret-key-refused = KOMOJU가 이 시크릿 키를 받아들이지 않았습니다. 아무것도 저장되지 않았습니다.
field-webhook-secret-missing = KOMOJU 웹훅 시크릿을 입력하세요.
field-webhook-secret-format = 웹훅 시크릿은 8~200자여야 합니다.
field-payment-types-none = 결제 수단을 하나 이상 선택하세요.
field-payment-types-not-offered = KOMOJU는 이 계정에 결제 수단 { $value }을(를) 제공하지 않습니다.
field-payment-types-format = 결제 수단은 credit_card 같은 KOMOJU의 이름입니다.
field-cancel-mode = Cafe24의 취소 방식(동기 또는 비동기)을 선택하세요.
field-locale = 일본어, 영어, 한국어 중 하나를 선택하세요.

# The webhook card: KOMOJU deliveries refused for their signature since the last good one.
webhook-signature-failures = { $since } 이후 서명이 맞지 않은 KOMOJU 전송: { $count }건. 웹훅 시크릿이 KOMOJU의 것과 일치하지 않습니다. KOMOJU 대시보드에서 이 웹훅에 표시된 시크릿을 입력하세요.
