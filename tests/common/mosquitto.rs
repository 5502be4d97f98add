//! A real mosquitto for the MQTT tests, started on a free loopback port
//! (scripts/test installs it; it is looked for in PATH, /usr/sbin and
//! /usr/local/sbin), and stopped when dropped.
#![allow(dead_code)]

use std::fs;
use std::net::TcpListener as StdListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn find_mosquitto() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto not found in PATH, /usr/sbin or /usr/local/sbin: the MQTT tests need a \
                 real broker. Install it (scripts/test does: apt-get install -y mosquitto)."
            )
        })
}

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A mosquitto process of this test; stopped (SIGTERM, so it saves its
/// sessions) when dropped or [`Broker::stop`]ped.
pub struct Broker {
    child: Option<Child>,
    log: PathBuf,
}

impl Broker {
    /// Starts mosquitto on `port` with state kept in `dir` (so persistent
    /// sessions survive a restart) and waits until it accepts connections.
    pub fn start(port: u16, dir: &Path) -> Broker {
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        let data = dir.join("data");
        fs::create_dir_all(&data).unwrap();
        // mosquitto started as root runs as user `mosquitto`: let it in to
        // save its sessions.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\n",
                data.display()
            ),
        )
        .unwrap();
        let log_file = fs::File::create(&log).unwrap();
        let child = Command::new(find_mosquitto())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("starting mosquitto");
        let mut broker = Broker {
            child: Some(child),
            log,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = broker.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "mosquitto exited ({status}): {}",
                    fs::read_to_string(&broker.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "mosquitto did not listen on {port}: {}",
                fs::read_to_string(&broker.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let start = Instant::now();
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if start.elapsed() > Duration::from_secs(5) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
