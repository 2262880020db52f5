//! Account commands: keys (`keygen`, `key register|revoke`), registration and the API token
//! it stores, the portal's terms, `token create|list|revoke`, and restricted groups.

use std::path::PathBuf;

use anyhow::bail;
use cyclepool_shared::distributor::{
    AcceptTerms, AccountCreated, AccountInfo, AddMembers, CreateGroup, CreateToken,
    DistributorKeyInfo, GroupCreated, GroupId, GroupInfo, RegisterAccount, RegisterKey,
    TERMS_VERSION, TokenCreated, TokenInfo,
};
use cyclepool_shared::{KeyId, VolunteerId};
use reqwest::Method;

use crate::files::{self, Credentials, PortalCredentials};
use crate::output::{print_answer, print_value, utc};
use crate::portal::Portal;
use crate::{Context, RegisterArgs, TOKEN_ENV};

/// A client of the portal carrying the API token: `CYCLEPOOL_TOKEN`, else the stored one.
pub fn portal_with_token(context: &Context) -> anyhow::Result<Portal> {
    let token = match std::env::var(TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        Ok(_) | Err(std::env::VarError::NotPresent) => stored_token(context)?,
        Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV} is not valid UTF-8"),
    };
    warn_if_cleartext(&context.portal_url);
    Portal::new(&context.portal_url, Some(&token))
}

fn stored_token(context: &Context) -> anyhow::Result<String> {
    let path = files::credentials_path()?;
    let credentials = Credentials::load(&path)?;
    match credentials.portals.get(&context.portal_url) {
        Some(entry) => Ok(entry.token.clone()),
        None => bail!(
            "no API token for {}: run `cyclepool register`, or set {TOKEN_ENV} (credentials are read from {})",
            context.portal_url,
            path.display()
        ),
    }
}

/// Tokens sent over plain http can be read on the way; that is fine only on this machine.
pub fn warn_if_cleartext(portal_url: &str) {
    let Ok(url) = reqwest::Url::parse(portal_url) else {
        return;
    };
    let host = url.host_str().unwrap_or_default();
    let local = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if url.scheme() == "http" && !local {
        eprintln!(
            "warning: {portal_url} is plain http: the API token travels unencrypted; use https"
        );
    }
}

/// `cyclepool keygen`.
pub fn keygen(context: &Context, out: Option<PathBuf>) -> anyhow::Result<()> {
    let path = match out {
        Some(path) => path,
        None => files::default_key_path()?,
    };
    let key = files::generate_key(&path)?;
    let public_key = key.public_key();
    let key_id = KeyId::of(&public_key);
    if context.json {
        return print_value(&serde_json::json!({
            "path": path.display().to_string(),
            "public_key": public_key,
            "key_id": key_id,
        }));
    }
    println!("wrote a new signing key to {}", path.display());
    println!("public key: {public_key}");
    println!("key id:     {key_id}");
    println!(
        "register it with: cyclepool key register --key {}",
        path.display()
    );
    Ok(())
}

/// `cyclepool register`.
pub fn register(context: &Context, args: &RegisterArgs) -> anyhow::Result<()> {
    // Checked before the account exists, so that a token is never made and then lost.
    let path = files::credentials_path()?;
    let mut credentials = Credentials::load(&path)?;
    if let Some(existing) = credentials
        .portals
        .get(&context.portal_url)
        .filter(|_| !args.replace)
    {
        bail!(
            "{} already holds a token for {}{}; pass --replace to register another account and replace it",
            path.display(),
            context.portal_url,
            existing
                .account_id
                .map(|id| format!(" (account {id})"))
                .unwrap_or_default()
        );
    }
    warn_if_cleartext(&context.portal_url);
    let portal = Portal::new(&context.portal_url, None)?;
    let request = RegisterAccount {
        name: args.name.clone(),
        contact: args.contact.clone(),
        organisation: args.organisation.clone(),
        purpose: args.purpose.clone(),
        accept_terms: args.accept_terms,
    };
    let answer = portal.send_json(Method::POST, "/accounts", &request)?;
    let created: AccountCreated = answer.parse()?;
    credentials.portals.insert(
        context.portal_url.clone(),
        PortalCredentials {
            token: created.token.secret.clone(),
            token_id: Some(created.token.info.token_id),
            account_id: Some(created.account.account_id),
        },
    );
    if let Err(err) = credentials.save(&path) {
        // The account exists now and this is the token's only copy: losing it would orphan
        // the account, so it is shown (on standard error) rather than dropped.
        eprintln!(
            "could not store the API token; keep it safe and pass it as {TOKEN_ENV}: {}",
            created.token.secret
        );
        return Err(err);
    }
    let terms_note = (created.account.terms_accepted != Some(TERMS_VERSION))
        .then(|| terms_needed(&context.portal_url));
    if context.json {
        // On standard error, so that standard output stays one JSON document.
        if let Some(note) = &terms_note {
            eprintln!("note: {note}");
        }
        let mut value = answer.value()?;
        if !args.show_token {
            value["token"]["secret"] = serde_json::Value::Null;
        }
        return print_value(&value);
    }
    println!(
        "registered account {} ({})",
        created.account.account_id, created.account.name
    );
    println!(
        "API token {} stored in {}",
        created.token.info.token_id,
        path.display()
    );
    if args.show_token {
        println!("token: {}", created.token.secret);
    }
    match terms_note {
        Some(note) => println!("note: {note}"),
        None => println!(
            "accepted the portal's terms (version {TERMS_VERSION}, {})",
            terms_url(&context.portal_url)
        ),
    }
    if !created.account.trusted {
        println!(
            "the portal's admin reviews your jobs before volunteers get them, until it trusts your account"
        );
    }
    Ok(())
}

/// Where the portal's distributor terms are.
pub fn terms_url(portal_url: &str) -> String {
    format!("{portal_url}/terms.html")
}

/// What to do before publishing when the current terms are not accepted.
pub fn terms_needed(portal_url: &str) -> String {
    format!(
        "publishing jobs needs the portal's terms: read {}, then run `cyclepool terms accept`",
        terms_url(portal_url)
    )
}

/// `cyclepool terms accept`.
pub fn accept_terms(context: &Context) -> anyhow::Result<()> {
    let request = AcceptTerms {
        version: TERMS_VERSION,
    };
    let answer = portal_with_token(context)?.send_json(Method::POST, "/account/terms", &request)?;
    if context.json {
        return print_answer(&answer);
    }
    let account: AccountInfo = answer.parse()?;
    println!(
        "account {} accepted the portal's terms (version {TERMS_VERSION}, {})",
        account.account_id,
        terms_url(&context.portal_url)
    );
    Ok(())
}

/// `cyclepool account`.
pub fn show(context: &Context) -> anyhow::Result<()> {
    let answer = portal_with_token(context)?.get("/account")?;
    if context.json {
        return print_answer(&answer);
    }
    let account: AccountInfo = answer.parse()?;
    println!("account      {}", account.account_id);
    println!("name         {}", account.name);
    println!("contact      {}", account.contact);
    println!("organisation {}", account.organisation);
    println!("purpose      {}", account.purpose);
    println!("created      {}", utc(account.created_ms));
    println!(
        "trusted      {}",
        if account.trusted {
            "yes: your jobs are published without review"
        } else {
            "no: the portal's admin reviews each job before volunteers get it"
        }
    );
    match account.terms_accepted {
        Some(TERMS_VERSION) => println!("terms        version {TERMS_VERSION} accepted"),
        Some(older) => println!(
            "terms        version {older} accepted, but the current terms are version {TERMS_VERSION}: {}",
            terms_needed(&context.portal_url)
        ),
        None => println!(
            "terms        not accepted: {}",
            terms_needed(&context.portal_url)
        ),
    }
    if account.suspended {
        println!("SUSPENDED by the portal");
    }
    for key in &account.keys {
        print_key(key);
    }
    Ok(())
}

fn print_key(key: &DistributorKeyInfo) {
    println!(
        "key {}  {}  {}{}",
        key.key_id,
        key.public_key,
        key.label,
        if key.revoked { "  (revoked)" } else { "" }
    );
}

/// `cyclepool key register`.
pub fn register_key(context: &Context, key: Option<PathBuf>, label: &str) -> anyhow::Result<()> {
    let path = match key {
        Some(path) => path,
        None => files::default_key_path()?,
    };
    let secret = files::load_key(&path)?;
    let request = RegisterKey {
        public_key: secret.public_key(),
        label: label.to_owned(),
    };
    let answer = portal_with_token(context)?.send_json(Method::POST, "/account/keys", &request)?;
    if context.json {
        return print_answer(&answer);
    }
    let registered: DistributorKeyInfo = answer.parse()?;
    println!("registered key {}", registered.key_id);
    print_key(&registered);
    Ok(())
}

/// `cyclepool key revoke`.
pub fn revoke_key(context: &Context, key_id: KeyId) -> anyhow::Result<()> {
    let answer = portal_with_token(context)?
        .send_empty(Method::DELETE, &format!("/account/keys/{key_id}"))?;
    if context.json {
        return print_answer(&answer);
    }
    let revoked: DistributorKeyInfo = answer.parse()?;
    println!("revoked key {}", revoked.key_id);
    Ok(())
}

/// `cyclepool token create`.
pub fn create_token(context: &Context, label: &str) -> anyhow::Result<()> {
    let request = CreateToken {
        label: label.to_owned(),
    };
    let answer = portal_with_token(context)?.send_json(Method::POST, "/tokens", &request)?;
    if context.json {
        return print_answer(&answer);
    }
    let created: TokenCreated = answer.parse()?;
    println!(
        "created token {} ({})",
        created.info.token_id, created.info.label
    );
    println!("secret (shown only now; pass it as {TOKEN_ENV}):");
    println!("{}", created.secret);
    Ok(())
}

/// `cyclepool token list`.
pub fn list_tokens(context: &Context) -> anyhow::Result<()> {
    let answer = portal_with_token(context)?.get("/tokens")?;
    if context.json {
        return print_answer(&answer);
    }
    let tokens: Vec<TokenInfo> = answer.parse()?;
    println!("{:>6}  {:<23}  {:<8}  LABEL", "ID", "CREATED", "STATE");
    for token in tokens {
        println!(
            "{:>6}  {:<23}  {:<8}  {}",
            token.token_id,
            utc(token.created_ms),
            if token.revoked { "revoked" } else { "active" },
            token.label
        );
    }
    Ok(())
}

/// `cyclepool token revoke`.
pub fn revoke_token(context: &Context, id: u64) -> anyhow::Result<()> {
    let answer =
        portal_with_token(context)?.send_empty(Method::DELETE, &format!("/tokens/{id}"))?;
    if context.json {
        return print_answer(&answer);
    }
    let revoked: TokenInfo = answer.parse()?;
    println!("revoked token {} ({})", revoked.token_id, revoked.label);
    Ok(())
}

/// `cyclepool group create`.
pub fn create_group(context: &Context, name: &str) -> anyhow::Result<()> {
    let request = CreateGroup {
        name: name.to_owned(),
    };
    let answer = portal_with_token(context)?.send_json(Method::POST, "/groups", &request)?;
    if context.json {
        return print_answer(&answer);
    }
    let created: GroupCreated = answer.parse()?;
    println!(
        "created group {} ({})",
        created.group.group_id, created.group.name
    );
    println!("invitation (shown only now): {}", created.invite);
    println!(
        "volunteers join by opening {}/#join={}",
        context.portal_url, created.invite
    );
    Ok(())
}

/// `cyclepool group list`.
pub fn list_groups(context: &Context) -> anyhow::Result<()> {
    let answer = portal_with_token(context)?.get("/groups")?;
    if context.json {
        return print_answer(&answer);
    }
    let groups: Vec<GroupInfo> = answer.parse()?;
    if groups.is_empty() {
        println!("no groups");
    }
    for group in groups {
        print_group(&group);
    }
    Ok(())
}

fn print_group(group: &GroupInfo) {
    println!(
        "group {} ({}): {} member(s), created {}",
        group.group_id,
        group.name,
        group.members.len(),
        utc(group.created_ms)
    );
    for member in &group.members {
        println!("  {member}");
    }
}

/// `cyclepool group add`.
pub fn add_members(
    context: &Context,
    id: GroupId,
    volunteers: Vec<VolunteerId>,
) -> anyhow::Result<()> {
    let request = AddMembers { volunteers };
    let answer = portal_with_token(context)?.send_json(
        Method::POST,
        &format!("/groups/{id}/members"),
        &request,
    )?;
    if context.json {
        return print_answer(&answer);
    }
    let group: GroupInfo = answer.parse()?;
    print_group(&group);
    Ok(())
}
