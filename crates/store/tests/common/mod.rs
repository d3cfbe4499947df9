//! Test databases on the PostgreSQL cluster that scripts/test.sh starts.
#![allow(dead_code)]

/// A fresh, empty database on the test cluster; returns its store URL. Fails (never skips)
/// when the cluster is not there.
pub async fn test_database() -> String {
    let admin = std::env::var("KURIER_TEST_POSTGRES").expect(
        "KURIER_TEST_POSTGRES is not set: run scripts/test.sh, which starts a PostgreSQL cluster for the tests",
    );
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut id = [0u8; 8];
    openssl::rand::rand_bytes(&mut id).unwrap();
    let name = format!(
        "kurier_test_{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    // In a libpq key=value string the last dbname wins.
    format!("postgres:{admin} dbname={name}")
}
