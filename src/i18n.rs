//! The languages a person reads this service in: Japanese, Korean and English
//! ([`Lang`]), and the catalogue of every text in each, kept in Fluent files
//! (`locales/{ja,ko,en}/*.ftl`, Project Fluent's `fluent-bundle`), never in code.
//!
//! Which language a page speaks is decided by the route that renders it
//! ([`Lang::negotiate`]: the person's own choice, then Cafe24's launch `lang`, then the
//! browser's `Accept-Language`, then English). A message missing in one language is a
//! defect the tests catch (`every_language_has_every_message`); should one slip
//! through, the page shows the English text, and the message id when even that is
//! missing, and logs it.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Ja,
    Ko,
    En,
}

/// The catalogue files of one language, in the order they are added to its bundle.
fn sources(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::Ja => &[
            include_str!("../locales/ja/settings.ftl"),
            include_str!("../locales/ja/pages.ftl"),
        ],
        Lang::Ko => &[
            include_str!("../locales/ko/settings.ftl"),
            include_str!("../locales/ko/pages.ftl"),
        ],
        Lang::En => &[
            include_str!("../locales/en/settings.ftl"),
            include_str!("../locales/en/pages.ftl"),
        ],
    }
}

impl Lang {
    /// Every language, in the order the language switch lists them.
    pub const ALL: [Lang; 3] = [Lang::Ja, Lang::Ko, Lang::En];

    /// The BCP 47 code (`ja`, `ko`, `en`): `<html lang>`, the `lang` query parameter,
    /// the language cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    /// The language's own name, for the switch (`日本語`, `한국어`, `English`).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Ja => "日本語",
            Lang::Ko => "한국어",
            Lang::En => "English",
        }
    }

    /// The language of a tag as Cafe24 (`ja_JP`, `ko_KR`, `en_US`) or a browser (`ko-KR`,
    /// `en`) writes it; `None` for another language or a malformed tag.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['_', '-']).next()?.to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The first language of an `Accept-Language` header this service speaks, by the
    /// header's `q` weights (ties keep the header's order; `q=0` never).
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut ranked: Vec<(u16, usize, Lang)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, item)| {
                let mut parts = item.split(';');
                let lang = Lang::from_tag(parts.next()?)?;
                let q =
                    parts
                        .find_map(|p| p.trim().strip_prefix("q="))
                        .map_or(Some(1000), |q| {
                            q.trim()
                                .parse::<f32>()
                                .ok()
                                .map(|q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
                        })?;
                (q > 0).then_some((q, i, lang))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.first().map(|(_, _, lang)| *lang)
    }

    /// The language of a page: the person's own choice (the switch), then Cafe24's
    /// launch `lang`, then the browser's `Accept-Language`, then English.
    pub fn negotiate(chosen: Option<&str>, launch: Option<&str>, accept: Option<&str>) -> Lang {
        chosen
            .and_then(Lang::from_tag)
            .or_else(|| launch.and_then(Lang::from_tag))
            .or_else(|| accept.and_then(Lang::from_accept_language))
            .unwrap_or(Lang::En)
    }
}

/// Every message of every language.
pub struct Catalogue {
    bundles: Vec<(Lang, FluentBundle<FluentResource>)>,
}

impl Catalogue {
    fn load() -> Catalogue {
        let bundles =
            Lang::ALL
                .into_iter()
                .map(|lang| {
                    let id = lang.code().parse().unwrap_or_else(|_| {
                        unreachable!("{} is a language identifier", lang.code())
                    });
                    let mut bundle = FluentBundle::new_concurrent(vec![id]);
                    // Text goes into HTML through the template engine, which escapes it;
                    // Unicode isolation marks would only show up as stray characters.
                    bundle.set_use_isolating(false);
                    for source in sources(lang) {
                        let resource = FluentResource::try_new((*source).to_owned())
                            .unwrap_or_else(|(resource, errors)| {
                                log::error!("{} catalogue: {errors:?}", lang.code());
                                resource
                            });
                        if let Err(errors) = bundle.add_resource(resource) {
                            log::error!("{} catalogue: {errors:?}", lang.code());
                        }
                    }
                    (lang, bundle)
                })
                .collect();
        Catalogue { bundles }
    }

    fn bundle(&self, lang: Lang) -> Option<&FluentBundle<FluentResource>> {
        self.bundles
            .iter()
            .find(|(l, _)| *l == lang)
            .map(|(_, b)| b)
    }

    /// The message `id` in `lang`, if the catalogue has it.
    pub fn get(&self, lang: Lang, id: &str) -> Option<String> {
        self.formatted(lang, id, None)
    }

    fn formatted(&self, lang: Lang, id: &str, args: Option<&FluentArgs<'_>>) -> Option<String> {
        let bundle = self.bundle(lang)?;
        let pattern = bundle.get_message(id)?.value()?;
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, args, &mut errors);
        errors.is_empty().then(|| text.into_owned())
    }

    /// The message `id` in `lang` with its variables (`$name` → value), as
    /// [`Catalogue::text`] falls back: English, then the id.
    pub fn text_with(&self, lang: Lang, id: &str, vars: &[(&str, &str)]) -> String {
        let mut args = FluentArgs::new();
        for (name, value) in vars {
            args.set(*name, (*value).to_owned());
        }
        self.formatted(lang, id, Some(&args)).unwrap_or_else(|| {
            log::error!("message {id} is missing in {}", lang.code());
            self.formatted(Lang::En, id, Some(&args))
                .unwrap_or_else(|| id.to_owned())
        })
    }

    /// The message `id` in `lang`; in English when `lang` lacks it, and the id itself
    /// when English does too (both logged).
    pub fn text(&self, lang: Lang, id: &str) -> String {
        self.get(lang, id).unwrap_or_else(|| {
            log::error!("message {id} is missing in {}", lang.code());
            self.get(Lang::En, id).unwrap_or_else(|| id.to_owned())
        })
    }

    /// Every message id of `lang`.
    pub fn ids(&self, lang: Lang) -> BTreeSet<String> {
        sources(lang)
            .iter()
            .filter_map(|source| FluentResource::try_new((*source).to_owned()).ok())
            .flat_map(|resource| {
                resource
                    .entries()
                    .filter_map(|entry| match entry {
                        fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The catalogue, loaded once.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_message_and_each_parses() {
        for lang in Lang::ALL {
            for source in sources(lang) {
                assert!(
                    FluentResource::try_new((*source).to_owned()).is_ok(),
                    "{} catalogue does not parse",
                    lang.code()
                );
            }
        }
        let english = catalogue().ids(Lang::En);
        assert!(english.len() > 10);
        for lang in Lang::ALL {
            let ids = catalogue().ids(lang);
            let missing: Vec<_> = english.difference(&ids).collect();
            let extra: Vec<_> = ids.difference(&english).collect();
            assert!(
                missing.is_empty(),
                "missing in {}: {missing:?}",
                lang.code()
            );
            assert!(extra.is_empty(), "only in {}: {extra:?}", lang.code());
            // A message with a variable (`$value`) formats once it is given.
            let mut args = FluentArgs::new();
            args.set("value", "x");
            args.set("count", 2);
            args.set("since", "2026-12-06 18:04 JST");
            for id in &ids {
                assert!(
                    catalogue().formatted(lang, id, Some(&args)).is_some(),
                    "{id} does not format in {}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn tags_and_accept_language_pick_a_language() {
        assert_eq!(Lang::from_tag("ko_KR"), Some(Lang::Ko));
        assert_eq!(Lang::from_tag("ja-JP"), Some(Lang::Ja));
        assert_eq!(Lang::from_tag("EN_us"), Some(Lang::En));
        assert_eq!(Lang::from_tag("zh_CN"), None);
        assert_eq!(
            Lang::from_accept_language("zh-CN,ko;q=0.8,ja;q=0.9"),
            Some(Lang::Ja)
        );
        assert_eq!(
            Lang::from_accept_language("ko;q=0,en;q=0.1"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("fr"), None);
        assert_eq!(Lang::negotiate(Some("ko"), Some("ja_JP"), None), Lang::Ko);
        assert_eq!(Lang::negotiate(None, Some("ja_JP"), Some("ko")), Lang::Ja);
        assert_eq!(
            Lang::negotiate(None, Some("zh_CN"), Some("ko-KR")),
            Lang::Ko
        );
        assert_eq!(Lang::negotiate(Some("xx"), None, None), Lang::En);
    }

    #[test]
    fn a_message_speaks_each_language() {
        assert_eq!(catalogue().text(Lang::Ko, "settings-save"), "저장");
        assert_eq!(catalogue().text(Lang::Ja, "settings-save"), "保存");
        assert_eq!(catalogue().text(Lang::En, "settings-save"), "Save");
        assert_eq!(
            catalogue().text(Lang::Ko, "no-such-message"),
            "no-such-message"
        );
    }
}
