//! `cyclepool site register|list|revoke` against the real server: the tag to paste, the
//! listing with credit, the portal's refusals of bad origins and of other accounts' sites.

// The harness serves every CLI test binary; this one uses only part of it.
#[allow(dead_code)]
mod support;

use support::Server;

#[test]
fn sites_are_registered_listed_and_revoked() {
    let server = Server::start();
    let alice = server.distributor();
    alice.register("Alice");

    let stdout = alice.ok(&[
        "site",
        "register",
        "--name",
        "Alice's blog",
        "--origin",
        "https://blog.example",
    ]);
    let site = stdout
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("`site register` prints the site's number: {stdout}"))
        .to_owned();
    assert!(
        stdout.contains(&format!(
            "<script src=\"{}/embed.js\" data-site=\"{site}\"></script>",
            alice.portal.trim_end_matches('/')
        )),
        "{stdout}"
    );

    let listed = alice.json(&["site", "list"]);
    assert_eq!(listed[0]["site_id"].to_string(), site);
    assert_eq!(listed[0]["origin"], "https://blog.example");
    assert_eq!(listed[0]["credit"]["results"], 0);
    let text = alice.ok(&["site", "list"]);
    assert!(
        text.contains("Alice's blog") && text.contains("0 validated result(s)"),
        "{text}"
    );

    // The portal's checks reach the person with their code.
    let stderr = alice.fails(&[
        "site",
        "register",
        "--name",
        "x",
        "--origin",
        "https://blog.example/path",
    ]);
    assert!(
        stderr.contains("invalid_value") && stderr.contains("path"),
        "{stderr}"
    );
    let mallory = server.distributor();
    mallory.register("Mallory");
    let stderr = mallory.fails(&["site", "revoke", &site]);
    assert!(stderr.contains("forbidden"), "{stderr}");

    let stdout = alice.ok(&["site", "revoke", &site]);
    assert!(stdout.contains(&format!("revoked site {site}")), "{stdout}");
    assert!(alice.ok(&["site", "list"]).contains("revoked"));
}
