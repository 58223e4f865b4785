# The settings site (PROTOCOL.md §12), Japanese. Keys: settings-<field of routes::settings_pages::Texts>.

settings-title = KOMOJU 決済
settings-mall = ショップ
settings-test-mode = テストモード：KOMOJU のテスト用キーで決済します。実際の入金はありません。
settings-live-mode = 本番モード：実際の決済が行われます。
settings-not-set-up = KOMOJU がまだ設定されていません。下でキーを保存してから、ショップを有効にしてください。
settings-komoju = KOMOJU アカウント
settings-komoju-help = キーは書き込み専用です。空欄のままにすると保存済みの値を使います。新しいシークレットキーは保存前に KOMOJU で確認します。
settings-secret-key = シークレットキー（sk_live_… または sk_test_…）
settings-webhook-secret = Webhook シークレット
settings-saved-hint = 保存済み：
settings-not-saved = 未保存
settings-payment-types = 提供する決済方法
settings-cancel-mode = キャンセル
settings-cancel-sync = 同期（Cafe24 にすぐ回答）
settings-cancel-async = 非同期（KOMOJU の確認後に Cafe24 へ通知）
settings-locale = KOMOJU 決済ページの言語
settings-review-page = 外部チェックアウトで KOMOJU の前に確認ページを表示する
settings-save = 保存
settings-shops = ショップ
settings-shops-help = ショップを有効にすると、このアプリが Cafe24 の決済代行として登録されます。外部チェックアウトは商品ページとカートに KOMOJU ボタンを追加します。
settings-shop = ショップ
settings-currency = 通貨
settings-gateway = 決済代行
settings-external-checkout = 外部チェックアウト
settings-on = 有効
settings-off = 無効
settings-pending = Cafe24 の確認待ち
settings-turn-on = 有効にする
settings-turn-off = 無効にする
settings-retry = 再試行
settings-webhook = KOMOJU Webhook
settings-webhook-help = KOMOJU ダッシュボードで、この URL と Webhook シークレットを使い、次のイベントを購読する Webhook を追加してください：
settings-events = イベント
settings-last-ping = 最後に受信した署名付き ping：
settings-never = まだありません
settings-send-test = テスト送信
settings-disconnect = 接続を解除
settings-disconnect-help = すべてのショップの決済代行登録とボタンを Cafe24 から削除し、このショップへのアプリのアクセスを削除して、決済の受付を停止します。注文は残ります。
settings-disconnect-confirm = 理解しました：すべてのショップから決済代行とボタンが削除され、決済の受付が停止します。
settings-done = 保存しました。
settings-disconnected = 接続を解除しました
settings-disconnected-help = このショップでは KOMOJU による決済を受け付けません。再接続するには Cafe24 管理画面からアプリを開いてください。
settings-error-title = エラーが発生しました
settings-read-only = 閲覧のみ：設定を変更できるのはショップの代表運営者だけです。

# The settings site's refusals with a fixed text (install::settings::SiteError::code).
site-error-no-session = セッションが終了しました。Cafe24 管理画面からアプリを開き直してください。
site-error-forbidden = このセッションではこの操作はできません。
site-error-read-only = 設定を変更できるのはショップの代表運営者だけです。閲覧はできます。
site-error-not-connected = このショップにはアプリが接続されていません。Cafe24 管理画面からアプリを開き直してください。
site-error-unknown-shop = このショップにそのショップ番号はありません。
site-error-unavailable = サービスが一時的に利用できません。しばらくしてからもう一度お試しください。
site-error-internal = こちら側で問題が発生しました。しばらくしてからもう一度お試しください。

# The payments page (install::settings::payments).
settings-payments = 決済一覧
settings-payments-help = KOMOJU で決済された注文です（新しい順）。時刻は各ショップのタイムゾーン、開始日・終了日は UTC の日付です。
settings-filter-state = 状態
settings-filter-all = すべて
settings-filter-shop = ショップ番号
settings-filter-from = 開始日
settings-filter-to = 終了日
settings-filter-order-id = 注文番号
settings-filter-show = 表示
settings-col-order = 注文
settings-col-amount = 金額
settings-col-state = 状態
settings-col-payment-type = 決済方法
settings-col-updated = 最終更新
settings-col-komoju = KOMOJU
settings-open-in-komoju = 開く
settings-next-page = 次のページ
settings-no-payments = 該当する決済はありません。
settings-back-to-settings = 設定
settings-download-csv = CSV でダウンロード

# Order states as the payments page names them (orders::state::OrderState).
state-pending = 未決済
state-awaiting-payment = 入金待ち
state-authorized = 与信済み
state-paid = 決済済み
state-amount-mismatch = 金額不一致
state-partially-refunded = 一部返金
state-refunded = 返金済み
state-cancelled = キャンセル
state-expired = 期限切れ
state-failed = 失敗

# Field errors of the KOMOJU form (install::settings::FieldError), under their field.
site-error-field = 保存されていません。下に示した項目を修正してください。
field-secret-key-missing = KOMOJU のシークレットキーを入力してください。
field-secret-key-format = KOMOJU のシークレットキーは sk_live_ または sk_test_ で始まり、空白を含みません。
field-secret-key-refused = KOMOJU がこのシークレットキーを受け付けませんでした。何も保存されていません。
field-webhook-secret-missing = KOMOJU の Webhook シークレットを入力してください。
field-webhook-secret-format = Webhook シークレットは 8〜200 文字で入力してください。
field-payment-types-none = 決済方法を 1 つ以上選んでください。
field-payment-types-not-offered = KOMOJU はこのアカウントに決済方法 { $value } を提供していません。
field-payment-types-format = 決済方法は credit_card のような KOMOJU の名前です。
field-cancel-mode = Cafe24 の取消方法（同期または非同期）を選んでください。
field-locale = 日本語、英語、韓国語のいずれかを選んでください。

# The webhook card: KOMOJU deliveries refused for their signature since the last good one.
webhook-signature-failures = { $since } 以降、署名が一致しなかった KOMOJU からの通知: { $count } 件。Webhook シークレットが KOMOJU のものと一致していません。KOMOJU のダッシュボードでこの Webhook に表示されるシークレットを入力してください。
