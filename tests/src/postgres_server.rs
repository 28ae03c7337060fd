//! A PostgreSQL server of the test's own (initdb into a temporary
//! directory, `postgres` on a free port), for tests that change its
//! configuration: TLS on with a certificate the test made. Killed on drop.
//! Run as the `postgres` user when the tests run as root (initdb refuses
//! root).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tls::Issued;

pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Where Debian keeps the server's programs (the newest version there).
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .map(|v| v.join("bin").join(name))
        .rfind(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the postgres user when this process is root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    /// A server that takes only TLS connections over TCP (trust
    /// authentication: the test is about the channel), with `server`'s
    /// certificate.
    pub fn start_tls(server: &Issued) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let out = as_server_user(&bin("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The server reads its certificate and key as its own files.
        for (from, to) in [(&server.cert, "server.crt"), (&server.key, "server.key")] {
            std::fs::copy(from, data.join(to)).expect("copy the certificate");
        }
        let port = crate::free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\nmax_connections = 50\n",
            dir.path().display()
        );
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .status()
                .expect("chown");
            assert!(status.success());
            let status = Command::new("chmod")
                .arg("600")
                .arg(data.join("server.key"))
                .status()
                .expect("chmod");
            assert!(status.success());
        }
        let mut child = as_server_user(&bin("postgres"))
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postgres");
        let err = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            let mut told = false;
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                seen.push_str(&line);
                seen.push('\n');
                if !told && line.contains("ready to accept connections") {
                    told = true;
                    let _ = ready_tx.send(Ok(()));
                }
            }
            if !told {
                let _ = ready_tx.send(Err(seen));
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("postgres stopped before it was ready:\n{log}"),
            Err(_) => panic!("postgres was not ready within 60 s"),
        }
        PrivatePostgres {
            port,
            dir,
            child: Some(child),
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` with `query` after
    /// a `?` (TLS settings).
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open postgresql.conf");
    f.write_all(text.as_bytes()).expect("append");
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The server may run as another user under `runuser`: kill the
            // postmaster by the pid it wrote (its backends end with it),
            // then the child.
            let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().map(str::to_owned));
            if let Some(pid) = pid {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
