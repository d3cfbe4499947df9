//! Store benchmark: durable appends per second (4 KiB and 1 MiB messages), concurrent appends,
//! and queue enqueue / lease+finish per second, for the store URL given. With `--file-baseline`
//! it also measures the alternative design the SQLite backend did not take: each body in its own
//! file (write, fsync, rename, fsync of the folder) plus a committed metadata row.
//!
//! Usage: kurier-bench-store STORE_URL [--scale N] [--file-baseline DIR]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use kurier_store::{NewQueueEntry, Recipient, RecipientStatus, Store, StoreError, now};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or("usage: kurier-bench-store STORE_URL [--scale N] [--file-baseline DIR]")?;
    let scale: usize = flag(&args, "--scale")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    let store = kurier_store::open(url).await?;
    match store.add_domain("bench.test").await {
        Ok(_) | Err(StoreError::Exists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let user = format!("bench{}@bench.test", now());
    store.add_account(&user, "pw", None).await?;
    let Recipient::Local(a) = store.resolve(&user).await? else {
        return Err("no account".into());
    };
    let inbox = store.mailbox(a[0].id, "INBOX").await?.ok_or("no INBOX")?;

    let small = vec![b'x'; 4096];
    let large = vec![b'y'; 1 << 20];
    report("append 4 KiB, one client", 1000 * scale, || {
        append(&store, inbox.id, &small, 1000 * scale)
    })
    .await?;
    report("append 4 KiB, 8 clients", 2000 * scale, || {
        append_parallel(&store, inbox.id, &small, 8, 250 * scale)
    })
    .await?;
    report("append 1 MiB, one client", 50 * scale, || {
        append(&store, inbox.id, &large, 50 * scale)
    })
    .await?;
    report("queue enqueue 4 KiB", 1000 * scale, || {
        enqueue(&store, &small, 1000 * scale)
    })
    .await?;
    report("queue lease+finish", 1000 * scale, || drain(&store)).await?;

    if let Some(dir) = flag(&args, "--file-baseline") {
        report("file baseline 4 KiB", 1000 * scale, || {
            files(&dir, &small, 1000 * scale)
        })
        .await?;
        report("file baseline 1 MiB", 50 * scale, || {
            files(&dir, &large, 50 * scale)
        })
        .await?;
    }
    Ok(())
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

type BenchResult = Result<(), Box<dyn std::error::Error>>;

async fn report<F, Fut>(what: &str, ops: usize, f: F) -> BenchResult
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = BenchResult>,
{
    let t = Instant::now();
    f().await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{what:<28} {:>10.0} /s   ({ops} in {secs:.2} s)",
        ops as f64 / secs
    );
    Ok(())
}

async fn append(store: &Arc<dyn Store>, mailbox: i64, body: &[u8], n: usize) -> BenchResult {
    for _ in 0..n {
        store.append(mailbox, body, &[], now()).await?;
    }
    Ok(())
}

async fn append_parallel(
    store: &Arc<dyn Store>,
    mailbox: i64,
    body: &[u8],
    tasks: usize,
    each: usize,
) -> BenchResult {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (s, b) = (store.clone(), body.to_vec());
        handles.push(tokio::spawn(async move {
            for _ in 0..each {
                s.append(mailbox, &b, &[], now()).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}

async fn enqueue(store: &Arc<dyn Store>, body: &[u8], n: usize) -> BenchResult {
    for i in 0..n {
        let e = NewQueueEntry {
            sender: "bench@bench.test".into(),
            recipients: vec![(format!("r{i}@remote.test"), Default::default())],
            require_tls: false,
            dsn: Default::default(),
        };
        store.enqueue(&e, body).await?;
    }
    Ok(())
}

async fn drain(store: &Arc<dyn Store>) -> BenchResult {
    loop {
        let batch = store.lease("bench", now(), 300, 10).await?;
        if batch.is_empty() {
            return Ok(());
        }
        for e in batch {
            let results: Vec<_> = e
                .recipients
                .iter()
                .map(|r| (r.address.clone(), RecipientStatus::Delivered, None))
                .collect();
            store.finish_attempt(e.id, "bench", &results, now()).await?;
        }
    }
}

/// The road not taken: one file per body, made durable the classic way, plus the metadata row.
async fn files(dir: &str, body: &[u8], n: usize) -> BenchResult {
    let dir = std::path::PathBuf::from(dir);
    let body = body.to_vec();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let db = rusqlite::Connection::open(dir.join("meta.db")).map_err(|e| e.to_string())?;
        db.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS m (name TEXT, size INTEGER);")
            .map_err(|e| e.to_string())?;
        let folder = std::fs::File::open(&dir).map_err(|e| e.to_string())?;
        for i in 0..n {
            let name = format!("{}-{i}", now());
            let tmp = dir.join(format!("{name}.tmp"));
            let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
            f.write_all(&body).and_then(|()| f.sync_all()).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, dir.join(&name)).map_err(|e| e.to_string())?;
            folder.sync_all().map_err(|e| e.to_string())?;
            db.execute("INSERT INTO m VALUES (?1, ?2)", rusqlite::params![name, body.len() as i64]).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await?
    .map_err(Into::into)
}
