//! The schema, as numbered migrations per backend. A database records the last one applied;
//! `open` applies the rest in one transaction each. Never edit a released migration: add one.

/// Marks a SQLite file as Kurier's (`PRAGMA application_id`, "KURI").
pub const SQLITE_APPLICATION_ID: i32 = 0x4B55_5249;

pub const SQLITE: &[&str] = &[
    // 1: the initial model.
    r#"
    CREATE TABLE domains (name TEXT PRIMARY KEY, created INTEGER NOT NULL);
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        address TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL REFERENCES domains(name),
        password TEXT NOT NULL,
        quota INTEGER,
        used INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        created INTEGER NOT NULL);
    CREATE INDEX accounts_domain ON accounts(domain);
    CREATE TABLE aliases (
        address TEXT PRIMARY KEY,
        domain TEXT NOT NULL REFERENCES domains(name),
        targets TEXT NOT NULL);
    CREATE INDEX aliases_domain ON aliases(domain);
    CREATE TABLE mailboxes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        special_use TEXT,
        uid_validity INTEGER NOT NULL,
        uid_next INTEGER NOT NULL DEFAULT 1,
        highest_modseq INTEGER NOT NULL DEFAULT 0,
        subscribed INTEGER NOT NULL DEFAULT 1,
        UNIQUE (account, name));
    CREATE TABLE blobs (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL, refs INTEGER NOT NULL);
    CREATE TABLE messages (
        mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        flags TEXT NOT NULL,
        internal_date INTEGER NOT NULL,
        size INTEGER NOT NULL,
        blob INTEGER NOT NULL REFERENCES blobs(id),
        PRIMARY KEY (mailbox, uid));
    -- A body is shared by all copies; usage is kept per account. Triggers also run on the
    -- cascaded deletes of mailboxes and accounts.
    CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN
        UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob;
        UPDATE accounts SET used = used + NEW.size
            WHERE id = (SELECT account FROM mailboxes WHERE id = NEW.mailbox);
    END;
    CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN
        UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob;
        DELETE FROM blobs WHERE id = OLD.blob AND refs <= 0;
        UPDATE accounts SET used = used - OLD.size
            WHERE id = (SELECT account FROM mailboxes WHERE id = OLD.mailbox);
    END;
    CREATE TABLE queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sender TEXT NOT NULL,
        size INTEGER NOT NULL,
        created INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        require_tls INTEGER NOT NULL,
        lease_holder TEXT,
        lease_expires INTEGER,
        body BLOB NOT NULL);
    CREATE INDEX queue_due ON queue(next_attempt);
    CREATE TABLE queue_recipients (
        queue INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        status TEXT NOT NULL,
        last_error TEXT,
        dsn TEXT,
        PRIMARY KEY (queue, address));
    CREATE TABLE tls_events (
        id INTEGER PRIMARY KEY,
        policy_domain TEXT NOT NULL,
        policy_type TEXT NOT NULL,
        policy_strings TEXT NOT NULL,
        mx_host TEXT NOT NULL,
        failure TEXT,
        receiving_ip TEXT,
        at INTEGER NOT NULL);
    CREATE INDEX tls_events_at ON tls_events(at);
    CREATE TABLE tlsrpt_reports (
        id INTEGER PRIMARY KEY,
        report_domain TEXT NOT NULL,
        submitter TEXT NOT NULL,
        received INTEGER NOT NULL,
        json BLOB NOT NULL);
    CREATE TABLE sts_policies (
        domain TEXT PRIMARY KEY,
        record_id TEXT NOT NULL,
        policy TEXT NOT NULL,
        fetched INTEGER NOT NULL,
        expires INTEGER NOT NULL);
    "#,
    // 2: per-domain settings (key/value; the features that read them own their keys).
    r#"
    CREATE TABLE domain_settings (
        domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (domain, key));
    "#,
    // 3: the rest of a TLSRPT failure detail (RFC 8460 §4.4): our address, the receiver's
    // greeting name, and why it failed.
    r#"
    ALTER TABLE tls_events ADD COLUMN sending_ip TEXT;
    ALTER TABLE tls_events ADD COLUMN receiving_helo TEXT;
    ALTER TABLE tls_events ADD COLUMN detail TEXT;
    "#,
    // 4: \Recent (RFC 3501 §2.3.2): messages with UID >= recent_uid are recent until a session
    // claims them. Existing messages are not new to anyone. And subscriptions by name.
    r#"
    ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
    UPDATE mailboxes SET recent_uid = uid_next;
    -- Subscriptions are names (RFC 9051 §6.3.7): they outlive a deleted mailbox and may name
    -- one that does not exist. mailboxes.subscribed is no longer read.
    CREATE TABLE subscriptions (
        account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY (account, name));
    INSERT INTO subscriptions (account, name) SELECT account, name FROM mailboxes WHERE subscribed = 1;
    -- QRESYNC (RFC 7162 §3.2.10): which UIDs went away at which MODSEQ.
    CREATE TABLE expunged (
        mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (mailbox, uid));
    CREATE INDEX expunged_modseq ON expunged(mailbox, modseq);
    "#,
    // 5: TLSRPT reports handed on, one per policy domain and day (RFC 8460 §4.1): the key
    // makes a day's report leave once, also from several nodes and after a restart.
    r#"
    CREATE TABLE tlsrpt_sent (
        domain TEXT NOT NULL,
        day BIGINT NOT NULL,
        report_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (domain, day));
    "#,
    // 6: per-account settings (key/value, like domain_settings), e.g. what submission does
    // with a TLS-Required header.
    r#"
    CREATE TABLE account_settings (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, key));
    "#,
    // 7: which aliases deliver to an account, one row per target, indexed by target: the
    // sender addresses of an account (submission) are one indexed query.
    r#"
    CREATE TABLE alias_targets (
        alias TEXT NOT NULL REFERENCES aliases(address) ON DELETE CASCADE,
        target TEXT NOT NULL,
        PRIMARY KEY (alias, target));
    CREATE INDEX alias_targets_target ON alias_targets(target);
    WITH RECURSIVE split(alias, target, rest) AS (
        SELECT address, '', targets || char(10) FROM aliases
        UNION ALL
        SELECT alias, substr(rest, 1, instr(rest, char(10)) - 1), substr(rest, instr(rest, char(10)) + 1)
        FROM split WHERE rest <> '')
    INSERT OR IGNORE INTO alias_targets (alias, target)
        SELECT alias, target FROM split WHERE target <> '';
    "#,
    // 8: RFC 3461 RET and ENVID of queued messages (recipients' NOTIFY/ORCPT stay in `dsn`).
    r#"
    ALTER TABLE queue ADD COLUMN dsn_ret TEXT;
    ALTER TABLE queue ADD COLUMN dsn_envid TEXT;
    "#,
    // 9: DMARC aggregate reports (RFC 7489 §7.2): the evaluations a day's report is summed
    // from (one JSON value each), the reports handed on (claimed once per domain and day, like
    // TLSRPT's) and the reports others sent us, as received.
    r#"
    CREATE TABLE dmarc_events (
        id INTEGER PRIMARY KEY,
        policy_domain TEXT NOT NULL,
        at BIGINT NOT NULL,
        event TEXT NOT NULL);
    CREATE INDEX dmarc_events_at ON dmarc_events(at);
    CREATE TABLE dmarc_sent (
        domain TEXT NOT NULL,
        day BIGINT NOT NULL,
        report_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (domain, day));
    CREATE TABLE dmarc_reports (
        id INTEGER PRIMARY KEY,
        policy_domain TEXT NOT NULL,
        reporter TEXT NOT NULL,
        received BIGINT NOT NULL,
        xml BLOB NOT NULL);
    "#,
    // 10: greylisting triplets (client network, sender, recipient): when first and last seen,
    // and whether they came back after the delay.
    r#"
    CREATE TABLE greylist (
        network TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        passed BOOLEAN NOT NULL,
        PRIMARY KEY (network, sender, recipient));
    CREATE INDEX greylist_last_seen ON greylist(last_seen);
    "#,
    // 11: Sieve scripts (RFC 5804's model: named, at most one active per account) and the
    // vacation replies sent (RFC 5230 §4.2: one per sender and handle per period).
    r#"
    CREATE TABLE sieve_scripts (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        content TEXT NOT NULL,
        active BOOLEAN NOT NULL,
        PRIMARY KEY (account, name));
    CREATE TABLE vacation_replies (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        handle TEXT NOT NULL,
        sent BIGINT NOT NULL,
        PRIMARY KEY (account, sender, handle));
    "#,
    // 12: the web administration: who administers what ("" = the whole server, else one
    // domain), browser sessions and API tokens (both kept as SHA-256 of their secret).
    r#"
    CREATE TABLE admin_roles (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        domain TEXT NOT NULL,
        PRIMARY KEY (account, domain));
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT NOT NULL);
    CREATE INDEX web_sessions_expires ON web_sessions(expires);
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT,
        UNIQUE (account, name));
    "#,
    // 13: app passwords for mail clients (server-made, high-entropy, kept as SHA-256): they
    // open IMAP, POP3, submission and ManageSieve, never the web administration.
    r#"
    CREATE TABLE app_passwords (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        created BIGINT NOT NULL,
        PRIMARY KEY (account, name));
    CREATE INDEX app_passwords_secret ON app_passwords(secret);
    "#,
    // 14: every delivery attempt's outcome per recipient, for the queue's history (what the
    // TLS, DANE or MTA-STS check said each time); gone with the entry.
    r#"
    CREATE TABLE queue_attempts (
        queue INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        at BIGINT NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT);
    CREATE INDEX queue_attempts_queue ON queue_attempts(queue);
    "#,
];

pub const POSTGRES: &[&str] = &[
    // 1: the initial model (the same as SQLite's).
    r#"
    CREATE TABLE domains (name TEXT PRIMARY KEY, created BIGINT NOT NULL);
    CREATE TABLE accounts (
        id BIGSERIAL PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL REFERENCES domains(name),
        password TEXT NOT NULL,
        quota BIGINT,
        used BIGINT NOT NULL DEFAULT 0,
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        created BIGINT NOT NULL);
    CREATE INDEX accounts_domain ON accounts(domain);
    CREATE TABLE aliases (
        address TEXT PRIMARY KEY,
        domain TEXT NOT NULL REFERENCES domains(name),
        targets TEXT NOT NULL);
    CREATE INDEX aliases_domain ON aliases(domain);
    CREATE TABLE mailboxes (
        id BIGSERIAL PRIMARY KEY,
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        special_use TEXT,
        uid_validity BIGINT NOT NULL,
        uid_next BIGINT NOT NULL DEFAULT 1,
        highest_modseq BIGINT NOT NULL DEFAULT 0,
        subscribed BOOLEAN NOT NULL DEFAULT TRUE,
        UNIQUE (account, name));
    CREATE TABLE blobs (id BIGSERIAL PRIMARY KEY, data BYTEA NOT NULL, refs BIGINT NOT NULL);
    CREATE TABLE messages (
        mailbox BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid BIGINT NOT NULL,
        modseq BIGINT NOT NULL,
        flags TEXT NOT NULL,
        internal_date BIGINT NOT NULL,
        size BIGINT NOT NULL,
        blob BIGINT NOT NULL REFERENCES blobs(id),
        PRIMARY KEY (mailbox, uid));
    CREATE FUNCTION messages_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob;
        UPDATE accounts SET used = used + NEW.size
            WHERE id = (SELECT account FROM mailboxes WHERE id = NEW.mailbox);
        RETURN NULL;
    END $$;
    CREATE FUNCTION messages_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob;
        DELETE FROM blobs WHERE id = OLD.blob AND refs <= 0;
        UPDATE accounts SET used = used - OLD.size
            WHERE id = (SELECT account FROM mailboxes WHERE id = OLD.mailbox);
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_insert AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION messages_insert();
    CREATE TRIGGER messages_delete AFTER DELETE ON messages FOR EACH ROW EXECUTE FUNCTION messages_delete();
    CREATE TABLE queue (
        id BIGSERIAL PRIMARY KEY,
        sender TEXT NOT NULL,
        size BIGINT NOT NULL,
        created BIGINT NOT NULL,
        next_attempt BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        require_tls BOOLEAN NOT NULL,
        lease_holder TEXT,
        lease_expires BIGINT,
        body BYTEA NOT NULL);
    CREATE INDEX queue_due ON queue(next_attempt);
    CREATE TABLE queue_recipients (
        queue BIGINT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        status TEXT NOT NULL,
        last_error TEXT,
        dsn TEXT,
        PRIMARY KEY (queue, address));
    CREATE TABLE tls_events (
        id BIGSERIAL PRIMARY KEY,
        policy_domain TEXT NOT NULL,
        policy_type TEXT NOT NULL,
        policy_strings TEXT NOT NULL,
        mx_host TEXT NOT NULL,
        failure TEXT,
        receiving_ip TEXT,
        at BIGINT NOT NULL);
    CREATE INDEX tls_events_at ON tls_events(at);
    CREATE TABLE tlsrpt_reports (
        id BIGSERIAL PRIMARY KEY,
        report_domain TEXT NOT NULL,
        submitter TEXT NOT NULL,
        received BIGINT NOT NULL,
        json BYTEA NOT NULL);
    CREATE TABLE sts_policies (
        domain TEXT PRIMARY KEY,
        record_id TEXT NOT NULL,
        policy TEXT NOT NULL,
        fetched BIGINT NOT NULL,
        expires BIGINT NOT NULL);
    "#,
    // 2: per-domain settings (key/value; the features that read them own their keys).
    r#"
    CREATE TABLE domain_settings (
        domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (domain, key));
    "#,
    // 3: the rest of a TLSRPT failure detail (RFC 8460 §4.4): our address, the receiver's
    // greeting name, and why it failed.
    r#"
    ALTER TABLE tls_events ADD COLUMN sending_ip TEXT;
    ALTER TABLE tls_events ADD COLUMN receiving_helo TEXT;
    ALTER TABLE tls_events ADD COLUMN detail TEXT;
    "#,
    // 4: \Recent (RFC 3501 §2.3.2): messages with UID >= recent_uid are recent until a session
    // claims them. Existing messages are not new to anyone. And subscriptions by name.
    r#"
    ALTER TABLE mailboxes ADD COLUMN recent_uid BIGINT NOT NULL DEFAULT 0;
    UPDATE mailboxes SET recent_uid = uid_next;
    -- Subscriptions are names (RFC 9051 §6.3.7): they outlive a deleted mailbox and may name
    -- one that does not exist. mailboxes.subscribed is no longer read.
    CREATE TABLE subscriptions (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY (account, name));
    INSERT INTO subscriptions (account, name) SELECT account, name FROM mailboxes WHERE subscribed;
    -- QRESYNC (RFC 7162 §3.2.10): which UIDs went away at which MODSEQ.
    CREATE TABLE expunged (
        mailbox BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid BIGINT NOT NULL,
        modseq BIGINT NOT NULL,
        PRIMARY KEY (mailbox, uid));
    CREATE INDEX expunged_modseq ON expunged(mailbox, modseq);
    "#,
    // 5: TLSRPT reports handed on, one per policy domain and day (RFC 8460 §4.1): the key
    // makes a day's report leave once, also from several nodes and after a restart.
    r#"
    CREATE TABLE tlsrpt_sent (
        domain TEXT NOT NULL,
        day BIGINT NOT NULL,
        report_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (domain, day));
    "#,
    // 6: per-account settings (key/value, like domain_settings), e.g. what submission does
    // with a TLS-Required header.
    r#"
    CREATE TABLE account_settings (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, key));
    "#,
    // 7: which aliases deliver to an account, one row per target, indexed by target: the
    // sender addresses of an account (submission) are one indexed query.
    r#"
    CREATE TABLE alias_targets (
        alias TEXT NOT NULL REFERENCES aliases(address) ON DELETE CASCADE,
        target TEXT NOT NULL,
        PRIMARY KEY (alias, target));
    CREATE INDEX alias_targets_target ON alias_targets(target);
    INSERT INTO alias_targets (alias, target)
        SELECT DISTINCT address, t FROM aliases, unnest(string_to_array(targets, E'\n')) AS t
        WHERE t <> '';
    "#,
    // 8: RFC 3461 RET and ENVID of queued messages (recipients' NOTIFY/ORCPT stay in `dsn`).
    r#"
    ALTER TABLE queue ADD COLUMN dsn_ret TEXT;
    ALTER TABLE queue ADD COLUMN dsn_envid TEXT;
    "#,
    // 9: DMARC aggregate reports (RFC 7489 §7.2): the evaluations a day's report is summed
    // from (one JSON value each), the reports handed on (claimed once per domain and day, like
    // TLSRPT's) and the reports others sent us, as received.
    r#"
    CREATE TABLE dmarc_events (
        id BIGSERIAL PRIMARY KEY,
        policy_domain TEXT NOT NULL,
        at BIGINT NOT NULL,
        event TEXT NOT NULL);
    CREATE INDEX dmarc_events_at ON dmarc_events(at);
    CREATE TABLE dmarc_sent (
        domain TEXT NOT NULL,
        day BIGINT NOT NULL,
        report_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (domain, day));
    CREATE TABLE dmarc_reports (
        id BIGSERIAL PRIMARY KEY,
        policy_domain TEXT NOT NULL,
        reporter TEXT NOT NULL,
        received BIGINT NOT NULL,
        xml BYTEA NOT NULL);
    "#,
    // 10: greylisting triplets (client network, sender, recipient): when first and last seen,
    // and whether they came back after the delay.
    r#"
    CREATE TABLE greylist (
        network TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        passed BOOLEAN NOT NULL,
        PRIMARY KEY (network, sender, recipient));
    CREATE INDEX greylist_last_seen ON greylist(last_seen);
    "#,
    // 11: Sieve scripts (RFC 5804's model: named, at most one active per account) and the
    // vacation replies sent (RFC 5230 §4.2: one per sender and handle per period).
    r#"
    CREATE TABLE sieve_scripts (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        content TEXT NOT NULL,
        active BOOLEAN NOT NULL,
        PRIMARY KEY (account, name));
    CREATE TABLE vacation_replies (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        handle TEXT NOT NULL,
        sent BIGINT NOT NULL,
        PRIMARY KEY (account, sender, handle));
    "#,
    // 12: the web administration: who administers what ("" = the whole server, else one
    // domain), browser sessions and API tokens (both kept as SHA-256 of their secret).
    r#"
    CREATE TABLE admin_roles (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        domain TEXT NOT NULL,
        PRIMARY KEY (account, domain));
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT NOT NULL);
    CREATE INDEX web_sessions_expires ON web_sessions(expires);
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT,
        UNIQUE (account, name));
    "#,
    // 13: app passwords for mail clients (server-made, high-entropy, kept as SHA-256): they
    // open IMAP, POP3, submission and ManageSieve, never the web administration.
    r#"
    CREATE TABLE app_passwords (
        account BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        created BIGINT NOT NULL,
        PRIMARY KEY (account, name));
    CREATE INDEX app_passwords_secret ON app_passwords(secret);
    "#,
    // 14: every delivery attempt's outcome per recipient, for the queue's history (what the
    // TLS, DANE or MTA-STS check said each time); gone with the entry.
    r#"
    CREATE TABLE queue_attempts (
        queue BIGINT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        at BIGINT NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT);
    CREATE INDEX queue_attempts_queue ON queue_attempts(queue);
    "#,
];
