//! `cyclepool site register|list|revoke`: the embedding sites of the account, whose pages
//! carry the portal's `embed.js` widget and whose visitors' validated work is credited to them.

use clap::Subcommand;
use cyclepool_shared::distributor::{RegisterSite, SiteId, SiteInfo};
use reqwest::Method;

use crate::Context;
use crate::account::portal_with_token;
use crate::output::{print_answer, utc};

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Register a site; its number goes in the embed tag's data-site attribute.
    Register {
        /// The site's name, shown to its visitors in the widget.
        #[arg(long)]
        name: String,
        /// The origin whose pages embed the widget, as a browser writes it
        /// (https://example.org, http://127.0.0.2:8000): only its pages may frame the widget.
        #[arg(long)]
        origin: String,
    },
    /// List the account's sites with the credit their visitors earned.
    List,
    /// Revoke a site at once: its widget is no longer served and its leases are refused.
    Revoke {
        /// The site's number, as `site register` or `site list` printed it.
        id: u64,
    },
}

/// Runs one site command.
pub fn run(context: &Context, command: SiteCommand) -> anyhow::Result<()> {
    let portal = portal_with_token(context)?;
    let answer = match &command {
        SiteCommand::Register { name, origin } => {
            let request = RegisterSite {
                name: name.clone(),
                origin: origin.clone(),
            };
            portal.send_json(Method::POST, "/sites", &request)?
        }
        SiteCommand::List => portal.get("/sites")?,
        SiteCommand::Revoke { id } => {
            portal.send_empty(Method::DELETE, &format!("/sites/{}", SiteId(*id)))?
        }
    };
    if context.json {
        return print_answer(&answer);
    }
    match command {
        SiteCommand::Register { .. } => {
            let site: SiteInfo = answer.parse()?;
            println!("registered site {} ({})", site.site_id, site.origin);
            println!("put this tag on the site's pages:");
            println!("{}", embed_tag(&context.portal_url, site.site_id));
        }
        SiteCommand::List => {
            let sites: Vec<SiteInfo> = answer.parse()?;
            if sites.is_empty() {
                println!("no sites");
            }
            for site in &sites {
                print_site(site);
            }
        }
        SiteCommand::Revoke { .. } => {
            let site: SiteInfo = answer.parse()?;
            println!("revoked site {} ({})", site.site_id, site.origin);
        }
    }
    Ok(())
}

fn print_site(site: &SiteInfo) {
    println!(
        "site {} ({}) {}: {} validated result(s), {} s computed, registered {}{}",
        site.site_id,
        site.name,
        site.origin,
        site.credit.results,
        site.credit.compute_ms / 1_000,
        utc(site.created_ms),
        if site.revoked { ", revoked" } else { "" }
    );
}

/// The script tag that embeds the widget of `site` from the portal at `portal_url`.
fn embed_tag(portal_url: &str, site: SiteId) -> String {
    format!(
        "<script src=\"{}/embed.js\" data-site=\"{site}\"></script>",
        portal_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_the_portal_s_script_and_the_site() {
        assert_eq!(
            embed_tag("https://portal.example/", SiteId(7)),
            "<script src=\"https://portal.example/embed.js\" data-site=\"7\"></script>"
        );
    }
}
