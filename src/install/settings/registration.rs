//! The registration saga at Cafe24: a shop's payment gateway (`POST/DELETE
//! /admin/paymentgateway`, with the shop's `partner_id`) and its external-checkout
//! script tag (`/admin/scripttags`). Each state is recorded before the call
//! (`registering`, `unregistering`) and after its answer (`on`, `off`); a retry after a
//! failure halfway first removes what the lost call may have created, so nothing is
//! registered twice.

use super::merchant_keys::merchant_row;
use super::refusal::{through_cafe24, READ_APPLICATION, WRITE_APPLICATION, WRITE_STORE};
use super::session::still_current;
use super::shops::shop_row;
use super::{db_error, SiteError};
use crate::cafe24::admin::{Cafe24Error, Shop};
use crate::cafe24::partner_id::PartnerId;
use crate::db::{self, merchants::Registration};
use crate::install::tokens;
use crate::keys::session::Session;
use crate::services::Services;

/// Turns the shop's payment gateway on (registers this app with Cafe24 with the shop's
/// `partner_id`, then takes its checkouts) or off (stops taking checkouts, removes the
/// script tag, unregisters). Repeating a finished switch does nothing; repeating a
/// failed one finishes it without doubling anything. Errors: no KOMOJU keys saved (to
/// turn on), an unknown shop, Cafe24 ([`SiteError::Refused`] names the permission), the
/// session ended meanwhile, the database.
pub async fn set_gateway(
    app: &Services,
    session: &Session,
    shop_no: i32,
    on: bool,
) -> Result<(), SiteError> {
    let (shop, _) = shop_row(app, &session.mall_id, shop_no).await?;
    if on {
        gateway_register(app, session, shop_no, shop.gateway_state).await
    } else {
        gateway_unregister(app, &session.mall_id, shop_no, &shop).await
    }
}

/// Registers the gateway from `before`; see [`set_gateway`].
async fn gateway_register(
    app: &Services,
    session: &Session,
    shop_no: i32,
    before: Registration,
) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let merchant = merchant_row(app, mall_id).await?;
    if !merchant.enabled {
        return Err(SiteError::Form(
            "Save your KOMOJU keys before turning a shop on".into(),
        ));
    }
    if before == Registration::On {
        return Ok(());
    }
    let partner_id =
        PartnerId::new(mall_id, shop_no, &merchant.public_ref).map_err(|_| SiteError::Internal)?;
    record_gateway(app, mall_id, shop_no, Registration::Registering, false).await?;
    let registered = tokens::with_access(app, mall_id, |access| {
        let partner_id = partner_id.as_str().to_owned();
        async move {
            if before != Registration::Off {
                // An earlier try may have reached Cafe24: start from nothing.
                app.cafe24
                    .unregister_gateway(mall_id, &access, shop_no)
                    .await?;
            }
            app.cafe24
                .register_gateway(mall_id, &access, shop_no, &partner_id)
                .await
        }
    })
    .await;
    let context = "registering the payment gateway";
    through_cafe24(app, mall_id, context, &[WRITE_STORE], registered).await?;
    gateway_on(app, session, shop_no).await?;
    log::info!("mall {mall_id} shop {shop_no}: payment gateway on ({partner_id})");
    Ok(())
}

/// Unregisters the gateway (its script tag first); see [`set_gateway`].
async fn gateway_unregister(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    shop: &db::merchants::ShopRow,
) -> Result<(), SiteError> {
    if shop.gateway_state == Registration::Off {
        return Ok(());
    }
    record_gateway(app, mall_id, shop_no, Registration::Unregistering, false).await?;
    if shop.script_state != Registration::Off {
        remove_script(app, mall_id, shop_no).await?;
    }
    let unregistered = tokens::with_access(app, mall_id, |access| async move {
        app.cafe24
            .unregister_gateway(mall_id, &access, shop_no)
            .await
    })
    .await;
    let context = "unregistering the payment gateway";
    through_cafe24(app, mall_id, context, &[WRITE_STORE], unregistered).await?;
    record_gateway(app, mall_id, shop_no, Registration::Off, false).await?;
    log::info!("mall {mall_id} shop {shop_no}: payment gateway off");
    Ok(())
}

async fn record_gateway(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    state: Registration,
    enabled: bool,
) -> Result<(), SiteError> {
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    app.db
        .run(move |c| db::merchants::set_gateway(c, &mall, shop_no, state, enabled, now))
        .await
        .map_err(|e| db_error("recording the payment gateway", e))
}

async fn record_script(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    state: Registration,
    script_no: Option<String>,
) -> Result<(), SiteError> {
    let mall = mall_id.to_owned();
    let now = app.clock.now_naive();
    app.db
        .run(move |c| {
            db::merchants::set_script(c, &mall, shop_no, state, script_no.as_deref(), now)
        })
        .await
        .map_err(|e| db_error("recording the script tag", e))
}

/// Records the shop's gateway `on` and the shop enabled, in one transaction that first
/// checks the session is still current and the mall connected (a disconnect meanwhile
/// leaves it `registering`, to be cleaned up by the next try).
async fn gateway_on(app: &Services, session: &Session, shop_no: i32) -> Result<(), SiteError> {
    let current = session.clone();
    let now = app.clock.now_naive();
    let recorded = app
        .db
        .run(move |c| {
            db::transaction(c, |c| {
                if !still_current(c, &current)? {
                    return Ok(false);
                }
                let (mall, on) = (&current.mall_id, Registration::On);
                db::merchants::set_gateway(c, mall, shop_no, on, true, now)?;
                Ok(true)
            })
        })
        .await
        .map_err(|e| db_error("recording the payment gateway", e))?;
    if recorded {
        Ok(())
    } else {
        Err(SiteError::NoSession)
    }
}

/// The loader's URL and integrity, as registered with Cafe24.
fn loader(app: &Services) -> (String, String) {
    let script = crate::external_checkout::loader_script(app.public_base());
    (
        app.public_url("/api/external-checkout/script", &[]),
        crate::external_checkout::integrity(&script),
    )
}

/// Deletes every script tag of this app's loader in the shop, then records `off`.
async fn remove_script(app: &Services, mall_id: &str, shop_no: i32) -> Result<(), SiteError> {
    let (src, _) = loader(app);
    record_script(app, mall_id, shop_no, Registration::Unregistering, None).await?;
    let removed = tokens::with_access(app, mall_id, |access| {
        let src = src.clone();
        async move {
            for tag in app.cafe24.script_tags(mall_id, &access, shop_no).await? {
                if tag.src == src {
                    app.cafe24
                        .delete_script_tag(mall_id, &access, shop_no, &tag.script_no)
                        .await?;
                }
            }
            Ok::<(), Cafe24Error>(())
        }
    })
    .await;
    let scopes = [READ_APPLICATION, WRITE_APPLICATION];
    through_cafe24(app, mall_id, "removing the script tag", &scopes, removed).await?;
    record_script(app, mall_id, shop_no, Registration::Off, None).await
}

/// Turns the shop's external-checkout button on (a script tag for the loader, on the
/// product and basket pages of the shop's skins, with its `integrity`) or off. Errors:
/// the gateway is not on (to turn on), an unknown shop, Cafe24, the database.
pub async fn set_script(
    app: &Services,
    session: &Session,
    shop_no: i32,
    on: bool,
) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let (shop, listed) = shop_row(app, mall_id, shop_no).await?;
    let before = shop.script_state;
    if !on {
        if before == Registration::Off {
            return Ok(());
        }
        remove_script(app, mall_id, shop_no).await?;
        log::info!("mall {mall_id} shop {shop_no}: external checkout off");
        return Ok(());
    }
    if shop.gateway_state != Registration::On {
        return Err(SiteError::Form(
            "Turn the shop's payment gateway on before its external checkout".into(),
        ));
    }
    if before == Registration::On {
        return Ok(());
    }
    if before != Registration::Off {
        remove_script(app, mall_id, shop_no).await?;
    }
    install_script(app, mall_id, shop_no, &listed).await?;
    log::info!("mall {mall_id} shop {shop_no}: external checkout on");
    Ok(())
}

/// Creates the loader's script tag on the skins of `listed` (the listing `shop_row` just
/// read: no second `GET /admin/shops`) and records it `on`.
async fn install_script(
    app: &Services,
    mall_id: &str,
    shop_no: i32,
    listed: &Shop,
) -> Result<(), SiteError> {
    record_script(app, mall_id, shop_no, Registration::Registering, None).await?;
    let (src, integrity) = loader(app);
    let skins: Vec<i64> = [listed.pc_skin_no, listed.mobile_skin_no]
        .into_iter()
        .flatten()
        .collect();
    let created = tokens::with_access(app, mall_id, |access| {
        let (src, integrity, skins) = (src.clone(), integrity.clone(), skins.clone());
        async move {
            app.cafe24
                .create_script_tag(mall_id, &access, shop_no, &src, &skins, &integrity)
                .await
        }
    })
    .await;
    let context = "installing the script tag";
    let script_no = through_cafe24(app, mall_id, context, &[WRITE_APPLICATION], created).await?;
    record_script(app, mall_id, shop_no, Registration::On, Some(script_no)).await
}
