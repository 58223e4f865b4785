//! axe-core (Deque's accessibility engine, from the npm registry) run in the page the
//! browser shows: no violation of WCAG 2.1 A or AA. `.ci/run` installs it under
//! `target/axe` (`npm install axe-core@4`); `AXE_CORE_JS` names another copy. Without it
//! the check fails under CI and is skipped, said out loud, elsewhere.

use std::path::PathBuf;

use fantoccini::Client;

/// Where axe-core's browser build is.
fn axe_source() -> Option<String> {
    let path = std::env::var("AXE_CORE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/axe/node_modules/axe-core/axe.min.js")
        });
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) if std::env::var("CI").is_ok() => {
            panic!(
                "axe-core is missing at {} ({e}): .ci/run installs it",
                path.display()
            )
        }
        Err(e) => {
            eprintln!(
                "axe-core not found at {} ({e}): accessibility check skipped; `npm install --prefix target/axe axe-core@4` runs it",
                path.display()
            );
            None
        }
    }
}

/// Runs axe on the page the browser shows and fails with every violation of WCAG 2.1 A
/// and AA (rule, impact, the elements' selectors) found on `page`.
pub async fn no_violations(client: &Client, page: &str) {
    let Some(source) = axe_source() else { return };
    client
        .execute(&source, vec![])
        .await
        .unwrap_or_else(|e| panic!("{page}: loading axe-core: {e}"));
    let result = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                  .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))))
                  .catch(e => done([{id: 'axe-error', impact: String(e), nodes: []}]));"#,
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("{page}: running axe-core: {e}"));
    let violations = result.as_array().cloned().unwrap_or_default();
    assert!(
        violations.is_empty(),
        "{page}: WCAG 2.1 A/AA violations: {}",
        serde_json::to_string_pretty(&violations).unwrap_or_default()
    );
}
