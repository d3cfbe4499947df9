//! What the SMTP benchmarks share: reading replies and building the test message.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Reads one reply (all its lines) and checks its code.
pub fn expect<R: Read>(r: &mut BufReader<R>, code: &str) -> Res<()> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err("connection closed".into());
        }
        if !line.starts_with(code) {
            return Err(format!("expected {code}, got {line:?}").into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// A message of at least `size` bytes with these headers, ending in `.CRLF` for DATA.
pub fn message(headers: &str, size: usize) -> Vec<u8> {
    let mut body = format!("{headers}\r\n").into_bytes();
    while body.len() < size {
        body.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    body.extend_from_slice(b".\r\n");
    body
}

/// `n` transactions from `from` to `to`, each pipelined like a real MTA (envelope and DATA in
/// one write, then the message), then QUIT.
pub fn transactions<S: Read + Write>(
    r: &mut BufReader<S>,
    from: &str,
    to: &str,
    message: &[u8],
    n: usize,
) -> Res<()> {
    let envelope = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
    for _ in 0..n {
        r.get_mut().write_all(envelope.as_bytes())?;
        expect(r, "250")?;
        expect(r, "250")?;
        expect(r, "354")?;
        r.get_mut().write_all(message)?;
        expect(r, "250")?;
    }
    r.get_mut().write_all(b"QUIT\r\n")?;
    Ok(())
}

/// Starts `cmd` (a `kurier serve`) and waits for `needle` on its log (stderr), which is then
/// drained so that the server never blocks on a full pipe.
pub fn start_logged(mut cmd: Command, needle: &str) -> Res<Child> {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let err = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(err).lines();
    for line in lines.by_ref() {
        if line?.contains(needle) {
            std::thread::spawn(move || for _ in lines {});
            return Ok(child);
        }
    }
    Err(format!("kurier did not log {needle:?}").into())
}
