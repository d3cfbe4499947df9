//! `kurier sieve`: an account's Sieve scripts from the command line (what ManageSieve does for
//! mail clients): list, show, upload (checked first: an error names line and column), activate.

use std::io::Read;

use anyhow::{Context, bail};

use crate::ConfigArgs;

/// The most bytes a script may have (Pigeonhole's `sieve_max_script_size` default is 1 MiB).
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

#[derive(clap::Subcommand)]
pub enum SieveCommand {
    /// The account's scripts; the active one is marked.
    List { account: String },
    /// Print one script.
    Get { account: String, name: String },
    /// Check a script (from FILE, or standard input) and store it under NAME.
    Put {
        account: String,
        name: String,
        file: Option<std::path::PathBuf>,
        /// Make it the active script as well.
        #[arg(long)]
        activate: bool,
    },
    /// Make NAME the active script (`--none`: none is active).
    Activate {
        account: String,
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
    /// Remove a script (not the active one).
    Delete { account: String, name: String },
}

pub async fn run(source: ConfigArgs, cmd: SieveCommand) -> anyhow::Result<()> {
    let store = crate::admin::open(&source).await?;
    let account_id = |address: String| {
        let store = store.clone();
        async move {
            match store.account(&address).await? {
                Some(a) => Ok(a.id),
                None => bail!("no account {address}; see: kurier user list"),
            }
        }
    };
    match cmd {
        SieveCommand::List { account } => {
            let id = account_id(account).await?;
            for s in store.sieve_scripts(id).await? {
                println!("{}{}", s.name, if s.active { "  (active)" } else { "" });
            }
        }
        SieveCommand::Get { account, name } => {
            let id = account_id(account.clone()).await?;
            let Some(s) = store
                .sieve_scripts(id)
                .await?
                .into_iter()
                .find(|s| s.name == name)
            else {
                bail!("{account} has no script {name:?}; see: kurier sieve list {account}");
            };
            print!("{}", s.content);
        }
        SieveCommand::Put {
            account,
            name,
            file,
            activate,
        } => {
            let id = account_id(account.clone()).await?;
            let mut bytes = Vec::new();
            match &file {
                Some(f) => {
                    std::fs::File::open(f)
                        .with_context(|| format!("cannot read {}", f.display()))?
                        .take(MAX_SCRIPT_BYTES as u64 + 1)
                        .read_to_end(&mut bytes)?;
                }
                None => {
                    std::io::stdin()
                        .take(MAX_SCRIPT_BYTES as u64 + 1)
                        .read_to_end(&mut bytes)?;
                }
            }
            if bytes.len() > MAX_SCRIPT_BYTES {
                bail!("the script is larger than {MAX_SCRIPT_BYTES} bytes");
            }
            let text =
                String::from_utf8(bytes).context("a Sieve script is UTF-8 text (RFC 5228 §2.2)")?;
            let where_ = file
                .as_ref()
                .map_or("the script".to_string(), |f| f.display().to_string());
            kurier_sieve::compile(&text).map_err(|e| anyhow::anyhow!("{where_}: {e}"))?;
            store.put_sieve_script(id, &name, &text).await?;
            if activate {
                store.activate_sieve_script(id, Some(&name)).await?;
            }
            eprintln!(
                "{name} stored for {account}{}",
                if activate { " and active" } else { "" }
            );
        }
        SieveCommand::Activate {
            account,
            name,
            none,
        } => {
            let id = account_id(account.clone()).await?;
            if name.is_none() && !none {
                bail!("name the script to activate, or --none");
            }
            store.activate_sieve_script(id, name.as_deref()).await?;
        }
        SieveCommand::Delete { account, name } => {
            let id = account_id(account).await?;
            store.delete_sieve_script(id, &name).await?;
        }
    }
    Ok(())
}
