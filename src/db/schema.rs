//! Diesel table definitions shared by both backends. Written by hand to match
//! `migrations/sqlite` and `migrations/postgresql`, which must stay in step.

diesel::table! {
    merchants (mall_id) {
        mall_id -> Text,
        public_ref -> Text,
        komoju_secret_key -> Text,
        komoju_webhook_secret -> Text,
        payment_types -> Text,
        locale -> Text,
        cancel_mode -> Text,
        allowed_hosts -> Text,
        paymethod_codes -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        notify_encoding -> Text,
        external_review -> Bool,
        refund_duplicates -> Bool,
        capture -> Text,
        auto_capture_after_days -> Integer,
    }
}

diesel::table! {
    merchant_shops (mall_id, shop_no) {
        mall_id -> Text,
        shop_no -> Integer,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        shop_name -> Text,
        currency -> Text,
        gateway_state -> Text,
        script_state -> Text,
        script_no -> Nullable<Text>,
        timezone -> Text,
        language_code -> Text,
    }
}

diesel::table! {
    cafe24_tokens (mall_id) {
        mall_id -> Text,
        access_token -> Text,
        access_expires_at -> Timestamp,
        refresh_token -> Text,
        refresh_expires_at -> Timestamp,
        scopes -> Text,
        user_id -> Text,
        refresh_lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    oauth_states (state_hash) {
        state_hash -> Text,
        mall_id -> Text,
        user_id -> Text,
        lang -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    launch_uses (hmac_hash) {
        hmac_hash -> Text,
        mall_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    mall_sessions (mall_id) {
        mall_id -> Text,
        generation -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    lifecycle_checks (mall_id) {
        mall_id -> Text,
        checked_at -> Timestamp,
        pending_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        mall_id -> Text,
        order_id -> Text,
        shop_no -> Integer,
        partner_id -> Text,
        flow -> Text,
        amount -> BigInt,
        amount_text -> Text,
        currency -> Text,
        state -> Text,
        return_url -> Text,
        return_noty_url -> Nullable<Text>,
        extra_data -> Nullable<Text>,
        request_fields -> Text,
        attempt -> Integer,
        komoju_idempotency_key -> Text,
        external_order_num -> Text,
        komoju_session_request -> Text,
        komoju_session_id -> Nullable<Text>,
        komoju_session_url -> Nullable<Text>,
        komoju_payment_id -> Nullable<Text>,
        payment_type -> Nullable<Text>,
        captured_amount -> Nullable<BigInt>,
        refunded_amount -> BigInt,
        pending_notice_sent -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        cancel_noty_url -> Nullable<Text>,
        reconciled_at -> Nullable<Timestamp>,
        payment_expires_at -> Nullable<Timestamp>,
        charged_amount -> Nullable<BigInt>,
        charged_currency -> Nullable<Text>,
    }
}

diesel::table! {
    captures (order_pk) {
        order_pk -> Text,
        payment_id -> Text,
        due_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    order_events (id) {
        id -> BigInt,
        order_pk -> Text,
        source -> Text,
        event -> Text,
        from_state -> Text,
        to_state -> Text,
        applied -> Bool,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (mall_id, event_id) {
        mall_id -> Text,
        event_id -> Text,
        event_type -> Text,
        order_pk -> Nullable<Text>,
        outcome -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    notifications (id) {
        id -> BigInt,
        order_pk -> Text,
        kind -> Text,
        dedup_key -> Text,
        target_url -> Text,
        encoding -> Text,
        fields -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        target_host -> Nullable<Text>,
    }
}

diesel::table! {
    outbox_hosts (host) {
        host -> Text,
        failures -> Integer,
        retry_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    external_checkout_limits (mall_id, shop_no) {
        mall_id -> Text,
        shop_no -> Integer,
        max_minor -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    refunds (id) {
        id -> Text,
        order_pk -> Text,
        mode -> Text,
        operation -> Text,
        fingerprint -> Text,
        cancel_amount -> BigInt,
        cancel_amount_text -> Text,
        tid -> Text,
        cancel_noty_url -> Nullable<Text>,
        extra_data -> Nullable<Text>,
        idempotency_key -> Text,
        komoju_request -> Text,
        komoju_refund_id -> Nullable<Text>,
        state -> Text,
        reply_status -> Nullable<Integer>,
        reply_body -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        bank_account_url -> Nullable<Text>,
    }
}

diesel::table! {
    duplicate_payments (payment_id) {
        payment_id -> Text,
        order_pk -> Text,
        session_id -> Nullable<Text>,
        payment_type -> Nullable<Text>,
        amount -> BigInt,
        currency -> Text,
        state -> Text,
        refund_idempotency_key -> Text,
        komoju_refund_id -> Nullable<Text>,
        bank_account_url -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(refunds -> orders (order_pk));
diesel::joinable!(duplicate_payments -> orders (order_pk));
diesel::joinable!(notifications -> orders (order_pk));
diesel::joinable!(merchant_shops -> merchants (mall_id));
diesel::joinable!(orders -> merchants (mall_id));
diesel::joinable!(order_events -> orders (order_pk));
diesel::joinable!(captures -> orders (order_pk));
diesel::table! {
    webhook_signature_failures (mall_id) {
        mall_id -> Text,
        failures -> BigInt,
        first_at -> Timestamp,
        last_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    merchants,
    merchant_shops,
    orders,
    order_events,
    webhook_events,
    notifications,
    refunds,
    duplicate_payments,
    captures,
    cafe24_tokens,
    oauth_states,
    outbox_hosts,
    external_checkout_limits,
    webhook_signature_failures
);
