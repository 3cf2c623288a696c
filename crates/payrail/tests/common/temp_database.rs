//! A fresh, empty PostgreSQL database for one test, shared by the test
//! binaries (`api`, `crash`) through `#[path]`: dropped, forcibly, with the
//! value.

/// A database made on the test server; dropped with this value.
pub struct TempDatabase {
    /// Its URL: the server's, with this database's name (query string kept).
    pub url: String,
    name: String,
    base_url: String,
}

impl TempDatabase {
    /// Makes `<prefix>_<random hex>` on the server at `base_url`.
    pub async fn create(base_url: &str, prefix: &str) -> TempDatabase {
        let (client, connection) = tokio_postgres::connect(base_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect {base_url}: {e}"));
        tokio::spawn(connection);
        let name = format!("{prefix}_{:016x}", rand::random::<u64>());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
        // Swap the database name in the URL's path, keeping any query string.
        let path = base_url.split_once('?').map_or(base_url, |(path, _)| path);
        let (head, _) = path.rsplit_once('/').unwrap_or((path, ""));
        let query = base_url.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
        TempDatabase { url: format!("{head}/{name}{query}"), name, base_url: base_url.to_owned() }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let (base, name) = (self.base_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime; use a runtime of our own on another thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                if let Ok((client, connection)) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}
