//! Real OpenSSH through wssh: a private sshd on loopback with throwaway keys, `ssh` with
//! `ProxyCommand wssh client ...` running a command, and `scp` moving 100 MiB each way.

use crate::support::*;
use std::process::Command;
use std::time::Instant;

/// A private sshd: its own host key, one authorized client key, loopback only.
pub struct Sshd {
    pub dir: TempDir,
    pub port: u16,
    _proc: Proc,
}

fn keygen(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let p = path.to_str().unwrap();
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f", p]));
}

pub fn free_port() -> u16 {
    // sshd cannot report a port 0 choice, so pick one and hand it over (a small race).
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = TempDir::new("sshd");
        keygen(&dir.path("host_key"));
        keygen(&dir.path("id"));
        std::fs::copy(dir.path("id.pub"), dir.path("authorized_keys")).unwrap();
        // As root, sshd needs its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PidFile none\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            d = dir.0.display()
        );
        std::fs::write(dir.path("sshd_config"), config).unwrap();
        let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .into_iter()
            .find(|p| exists(p.as_ref()));
        let mut cmd = Command::new(sshd.expect("sshd (openssh-server) must be installed"));
        cmd.args(["-D", "-e", "-f", dir.path("sshd_config").to_str().unwrap()]);
        let (proc, _) = spawn_until(cmd, "Server listening on");
        Sshd {
            dir,
            port,
            _proc: proc,
        }
    }

    /// Common options for ssh and scp: the throwaway key, no config, no prompts.
    pub fn opts(&self, proxy: &str) -> Vec<String> {
        let mut o = self.direct_opts();
        o.extend(["-o".into(), format!("ProxyCommand={proxy}")]);
        o
    }

    /// The same without a ProxyCommand.
    pub fn direct_opts(&self) -> Vec<String> {
        let mut o: Vec<String> = vec!["-F".into(), "/dev/null".into(), "-i".into()];
        o.push(self.dir.path("id").to_str().unwrap().into());
        for opt in [
            "IdentitiesOnly=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "LogLevel=ERROR",
            "ConnectTimeout=15",
        ] {
            o.extend(["-o".into(), opt.into()]);
        }
        o
    }
}

pub fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn ssh_over(scheme: &str) {
    let sshd = Sshd::start();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&format!("127.0.0.1:{}", sshd.port), &[]);
    let mut proxy = format!("{BIN} client {}", srv.url(scheme, "/"));
    if scheme == "wss" {
        proxy += &format!(" --ca {}", c.ca);
    }
    let o = sshd.opts(&proxy);
    let host = format!("{}@wssh-test", user());

    let out = run(Command::new("ssh")
        .args(&o)
        .args([&host, "echo", "hello-from-sshd"]));
    assert_eq!(out.trim(), "hello-from-sshd");

    // 100 MiB each way with scp, compared by checksum.
    let size = 100 << 20;
    let (up_src, up_dst) = (sshd.dir.path("up-src"), sshd.dir.path("up-dst"));
    let (down_src, down_dst) = (sshd.dir.path("down-src"), sshd.dir.path("down-dst"));
    std::fs::write(&up_src, data(7, size)).unwrap();
    std::fs::write(&down_src, data(8, size)).unwrap();
    let t = Instant::now();
    run(Command::new("scp")
        .args(&o)
        .arg(&up_src)
        .arg(format!("{host}:{}", up_dst.display())));
    run(Command::new("scp")
        .args(&o)
        .arg(format!("{host}:{}", down_src.display()))
        .arg(&down_dst));
    eprintln!("{scheme}: scp 100 MiB each way in {:?}", t.elapsed());
    assert_eq!(
        checksum(&std::fs::read(&up_dst).unwrap()),
        checksum(&data(7, size)),
        "upload"
    );
    assert_eq!(
        checksum(&std::fs::read(&down_dst).unwrap()),
        checksum(&data(8, size)),
        "download"
    );
}

#[test]
fn openssh_command_and_scp_100mib_each_way_over_ws() {
    ssh_over("ws");
}

#[test]
fn openssh_command_and_scp_100mib_each_way_over_wss_with_ca() {
    ssh_over("wss");
}
