//! The one fixture that builds `cafe24-komoju merchant add` arguments, shared by the API
//! tests, the browser test and the benchmark (each includes this file with `#[path]`).

/// A `merchant add` command: the demo mall's values unless told otherwise.
#[derive(Debug, Clone)]
pub struct MerchantAdd {
    mall_id: String,
    shop_no: String,
    public_ref: String,
    secret_key: String,
    webhook_secret: String,
    extra: Vec<String>,
}

#[allow(dead_code)]
impl MerchantAdd {
    /// `demomall`, shop 1, `public_ref` `demo-public`, the keys
    /// `sk_test_demomall_0123456789` / `whsec_demomall_0123456789`.
    pub fn demo() -> MerchantAdd {
        MerchantAdd::mall("demomall").public_ref("demo-public")
    }

    /// Another mall, shop 1, `public_ref` `p`, keys `sk_test_{mall}_0123456789` and
    /// `whsec_{mall}_0123456789`.
    pub fn mall(mall_id: &str) -> MerchantAdd {
        MerchantAdd {
            mall_id: mall_id.to_owned(),
            shop_no: "1".to_owned(),
            public_ref: "p".to_owned(),
            secret_key: format!("sk_test_{mall_id}_0123456789"),
            webhook_secret: format!("whsec_{mall_id}_0123456789"),
            extra: Vec::new(),
        }
    }

    pub fn shop_no(mut self, shop_no: &str) -> MerchantAdd {
        self.shop_no = shop_no.to_owned();
        self
    }

    pub fn public_ref(mut self, public_ref: &str) -> MerchantAdd {
        self.public_ref = public_ref.to_owned();
        self
    }

    pub fn secret_key(mut self, key: &str) -> MerchantAdd {
        self.secret_key = key.to_owned();
        self
    }

    pub fn webhook_secret(mut self, secret: &str) -> MerchantAdd {
        self.webhook_secret = secret.to_owned();
        self
    }

    /// Any other flag, e.g. `.flag("--payment-types", "credit_card,konbini")`.
    pub fn flag(mut self, name: &str, value: &str) -> MerchantAdd {
        self.extra.push(name.to_owned());
        self.extra.push(value.to_owned());
        self
    }

    /// The arguments after the program name: `merchant add --mall-id …`.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "merchant",
            "add",
            "--mall-id",
            &self.mall_id,
            "--shop-no",
            &self.shop_no,
            "--public-ref",
            &self.public_ref,
            "--komoju-secret-key",
            &self.secret_key,
            "--komoju-webhook-secret",
            &self.webhook_secret,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(self.extra.iter().cloned());
        args
    }

    /// The whole command line, program name first (for `Cli::parse_from`).
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["cafe24-komoju".to_owned()];
        argv.extend(self.args());
        argv
    }
}
