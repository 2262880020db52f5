//! `cyclepool`: the distributor's command line, over the same HTTP API as the dashboard.
//!
//! Every command talks to `--portal` (env `CYCLEPOOL_PORTAL`). The API token comes from the
//! environment (`CYCLEPOOL_TOKEN`) or the credentials file that `register` fills, never from
//! an argument, where `ps` would show it to every user of the machine; so does the admin
//! token of `cyclepool admin` (stored apart by `admin login`). `cyclepool log` needs no token.

mod account;
mod admin;
mod files;
mod inputs;
mod jobs;
mod log;
mod output;
mod portal;
mod results;
mod sites;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cyclepool_shared::distributor::{Category, GroupId};
use cyclepool_shared::{JobId, KeyId, VolunteerId};

use crate::inputs::{InputsFormat, UnitRange};
use crate::jobs::ResultsFormat;

/// The environment variable holding an API token; it wins over the credentials file.
pub const TOKEN_ENV: &str = "CYCLEPOOL_TOKEN";

#[derive(Debug, Parser)]
#[command(
    name = "cyclepool",
    version,
    about = "Distribute work to Cyclepool volunteers: accounts, keys, jobs and verified results",
    after_help = "The API token is read from CYCLEPOOL_TOKEN, else from the credentials file \
                  that `cyclepool register` writes (under $XDG_CONFIG_HOME/cyclepool or \
                  ~/.config/cyclepool); for `cyclepool admin`, the admin token from \
                  CYCLEPOOL_TOKEN or from `cyclepool admin login`."
)]
struct Cli {
    /// The portal's address.
    #[arg(
        long,
        global = true,
        env = "CYCLEPOOL_PORTAL",
        default_value = "http://127.0.0.1:8080"
    )]
    portal: String,

    /// Print the server's JSON answer instead of a summary.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a new ed25519 key for signing job declarations (stored with mode 0600).
    Keygen {
        /// Where to write the key [default: $XDG_CONFIG_HOME/cyclepool/key.json].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Register a distributor account and store its first API token.
    Register(RegisterArgs),
    /// Show the account the API token belongs to.
    Account,
    /// Signing keys registered to the account.
    #[command(subcommand)]
    Key(KeyCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Jobs: submit, follow, control, download results.
    #[command(subcommand)]
    Job(JobCommand),
    /// Restricted groups of volunteers.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The portal's distributor terms, which publishing needs.
    #[command(subcommand)]
    Terms(TermsCommand),
    /// The portal's public transparency log: verify it, show it.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// The portal admin's review queue, accounts, keys and abuse reports (admin token).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Embedding sites: the origins whose pages carry the portal's widget (embed.js).
    #[command(subcommand)]
    Site(sites::SiteCommand),
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Your or your organisation's name, shown to volunteers with every job.
    #[arg(long)]
    pub name: String,
    /// How the portal reaches you (an e-mail address or similar).
    #[arg(long)]
    pub contact: String,
    /// What your organisation is.
    #[arg(long)]
    pub organisation: String,
    /// What your jobs are for (at least 10 characters).
    #[arg(long)]
    pub purpose: String,
    /// Also print the API token's secret (it is stored in the credentials file either way).
    #[arg(long)]
    pub show_token: bool,
    /// Replace credentials already stored for this portal.
    #[arg(long)]
    pub replace: bool,
    /// Accept the portal's distributor terms (read them first at <portal>/terms.html);
    /// publishing needs them. Later: `cyclepool terms accept`.
    #[arg(long)]
    pub accept_terms: bool,
}

#[derive(Debug, Subcommand)]
enum TermsCommand {
    /// Accept the current version of the portal's terms (read them at <portal>/terms.html).
    Accept,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Register the public half of a key made by `cyclepool keygen`.
    Register {
        /// The key file [default: $XDG_CONFIG_HOME/cyclepool/key.json].
        #[arg(long)]
        key: Option<PathBuf>,
        /// A name for the key, to recognise it later.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a key: jobs can no longer be signed with it.
    Revoke {
        /// The key id (16 hex digits), as `key register` printed it.
        key_id: KeyId,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new API token; its secret is printed once.
    Create {
        /// What the token is for ("CI", "laptop").
        #[arg(long)]
        label: String,
    },
    /// List the account's tokens (never their secrets).
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Upload a module and create a job on it.
    Submit(Box<SubmitArgs>),
    /// List your jobs, newest first.
    List,
    /// A job's progress.
    Status { id: u64 },
    /// Stop handing out a job's units.
    Pause { id: u64 },
    /// Hand out a paused job's units again.
    Resume { id: u64 },
    /// End a job for good.
    Cancel { id: u64 },
    /// A job's failed units and the volunteers' reports about it.
    Failures { id: u64 },
    /// Download a job's validated results (JSON lines are verified as they arrive).
    Results {
        id: u64,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// `jsonl`: one checked line per unit; `tar`: the raw outputs and SHA256SUMS.
        #[arg(long, value_enum, default_value_t = ResultsFormat::Jsonl)]
        format: ResultsFormat,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("unit_inputs").required(true).args(["range", "inputs_file"])))]
pub struct SubmitArgs {
    /// The job's WebAssembly module.
    #[arg(long)]
    pub module: PathBuf,
    /// The title volunteers see.
    #[arg(long)]
    pub title: String,
    /// What the job computes, shown to volunteers.
    #[arg(long, conflicts_with = "description_file")]
    pub description: Option<String>,
    /// Read the description from a file.
    #[arg(long)]
    pub description_file: Option<PathBuf>,
    /// Units over a range of numbers: START..END[:STEP] (each unit's input is its [from, to)).
    #[arg(long)]
    pub range: Option<UnitRange>,
    /// One unit per line of this file.
    #[arg(long)]
    pub inputs_file: Option<PathBuf>,
    /// How the lines of --inputs-file are read [default: raw].
    // Conflicting with --range is requiring --inputs-file (the group needs one of them);
    // clap does not check `requires` against a member of a group here.
    #[arg(long, value_enum, conflicts_with = "range")]
    pub inputs_format: Option<InputsFormat>,
    /// The job's policy: a JSON file with any fields of the portal's JobPolicy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// 0 (default) to 9: higher priorities are served first.
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
    /// 1 (default) to 1000: the job's share of volunteers among jobs of its priority.
    #[arg(long, default_value_t = 1)]
    pub weight: u32,
    /// Only members of this group may compute the job.
    #[arg(long)]
    pub group: Option<u64>,
    /// How long the job stays on offer, in seconds [default: the portal's].
    #[arg(long)]
    pub expires_in: Option<u64>,
    /// The field the job serves; volunteers may leave out whole categories [default: other].
    #[arg(long, value_parser = jobs::category_parser())]
    pub category: Option<Category>,
    /// Sign the job's declaration with your registered key, so volunteers can check it.
    #[arg(long)]
    pub sign: bool,
    /// The signing key [default: $XDG_CONFIG_HOME/cyclepool/key.json].
    #[arg(long, requires = "sign")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group; its invitation is printed once.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List your groups and their members.
    List,
    /// Add volunteers (by public key) to a group.
    Add {
        id: u64,
        /// A volunteer's public key (64 hex digits); repeat for several.
        #[arg(long = "volunteer", required = true, num_args = 1..)]
        volunteers: Vec<VolunteerId>,
    },
}

/// What every command needs: where the portal is and how to print.
#[derive(Debug)]
pub struct Context {
    /// The portal's normalised URL (also the key of its credentials).
    pub portal_url: String,
    pub json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let context = Context {
        portal_url: portal::normalise_portal_url(&cli.portal)?,
        json: cli.json,
    };
    match cli.command {
        Command::Keygen { out } => account::keygen(&context, out),
        Command::Register(args) => account::register(&context, &args),
        Command::Account => account::show(&context),
        Command::Key(KeyCommand::Register { key, label }) => {
            account::register_key(&context, key, &label)
        }
        Command::Key(KeyCommand::Revoke { key_id }) => account::revoke_key(&context, key_id),
        Command::Token(TokenCommand::Create { label }) => account::create_token(&context, &label),
        Command::Token(TokenCommand::List) => account::list_tokens(&context),
        Command::Token(TokenCommand::Revoke { id }) => account::revoke_token(&context, id),
        Command::Job(JobCommand::Submit(args)) => jobs::submit(&context, &args),
        Command::Job(JobCommand::List) => jobs::list(&context),
        Command::Job(JobCommand::Status { id }) => jobs::status(&context, JobId(id)),
        Command::Job(JobCommand::Pause { id }) => jobs::change(&context, JobId(id), "pause"),
        Command::Job(JobCommand::Resume { id }) => jobs::change(&context, JobId(id), "resume"),
        Command::Job(JobCommand::Cancel { id }) => jobs::change(&context, JobId(id), "cancel"),
        Command::Job(JobCommand::Failures { id }) => jobs::failures(&context, JobId(id)),
        Command::Job(JobCommand::Results { id, out, format }) => {
            jobs::results(&context, JobId(id), out.as_deref(), format)
        }
        Command::Group(GroupCommand::Create { name }) => account::create_group(&context, &name),
        Command::Group(GroupCommand::List) => account::list_groups(&context),
        Command::Group(GroupCommand::Add { id, volunteers }) => {
            account::add_members(&context, GroupId(id), volunteers)
        }
        Command::Terms(TermsCommand::Accept) => account::accept_terms(&context),
        Command::Log(command) => log::run(&context, command),
        Command::Admin(command) => admin::run(&context, command),
        Command::Site(command) => sites::run(&context, command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn submit_needs_exactly_one_source_of_inputs() {
        let base = [
            "cyclepool",
            "job",
            "submit",
            "--module",
            "m.wasm",
            "--title",
            "t",
        ];
        assert!(Cli::try_parse_from(base).is_err());
        assert!(Cli::try_parse_from(base.iter().chain(&["--range", "0..10"])).is_ok());
        assert!(
            Cli::try_parse_from(base.iter().chain(&[
                "--range",
                "0..10",
                "--inputs-file",
                "in.txt"
            ]))
            .is_err()
        );
        assert!(
            Cli::try_parse_from(base.iter().chain(&["--range", "0..10", "--key", "k"])).is_err()
        );
        assert!(
            Cli::try_parse_from(base.iter().chain(&[
                "--range",
                "0..10",
                "--inputs-format",
                "base64"
            ]))
            .is_err()
        );
    }

    #[test]
    fn categories_and_report_actions_are_parsed_by_name() {
        let base = [
            "cyclepool",
            "job",
            "submit",
            "--module",
            "m.wasm",
            "--title",
            "t",
            "--range",
            "0..1",
        ];
        for (name, expected) in [
            ("mathematics", Category::Mathematics),
            ("computer_science", Category::ComputerScience),
            ("computer-science", Category::ComputerScience),
        ] {
            let cli = Cli::try_parse_from(base.iter().chain(&["--category", name])).unwrap();
            let Command::Job(JobCommand::Submit(args)) = cli.command else {
                panic!("parsed as another command");
            };
            assert_eq!(args.category, Some(expected));
        }
        let wrong = Cli::try_parse_from(base.iter().chain(&["--category", "alchemy"]))
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains("mathematics"),
            "lists the categories: {wrong}"
        );

        let resolve = ["cyclepool", "admin", "resolve", "3", "--action"];
        assert!(Cli::try_parse_from(resolve.iter().chain(&["withdraw-job"])).is_ok());
        assert!(Cli::try_parse_from(resolve.iter().chain(&["suspend_distributor"])).is_ok());
        assert!(Cli::try_parse_from(resolve.iter().chain(&["ignore"])).is_err());
        // Reasons are required where the portal requires them.
        assert!(Cli::try_parse_from(["cyclepool", "admin", "suspend", "2"]).is_err());
        assert!(Cli::try_parse_from(["cyclepool", "admin", "reject", "2"]).is_err());
    }
}
