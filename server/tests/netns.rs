//! Network namespace helpers, against the real kernel and iproute2.
//!
//! Needs root and `ping` (Debian package iputils-ping; the CI script
//! installs it).

#![cfg(feature = "runtime")]

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use sstpd::testing::netns::{create_veth_pair, NetNs, NetNsError, VethEnd};

const PREFIX: &str = "sstpd-nstest";

fn inode(path: &str) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

fn is_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn run_executes_the_closure_inside_the_namespace() {
    let ns = NetNs::new(PREFIX).unwrap();
    // Namespaces are per thread; /proc/self would name the main thread's.
    let outside = inode("/proc/thread-self/ns/net");
    let inside = ns.run(|| inode("/proc/thread-self/ns/net"));
    assert_ne!(inside, outside);
    assert_eq!(inside, inode(ns.path().to_str().unwrap()));
    // The calling thread did not move.
    assert_eq!(inode("/proc/thread-self/ns/net"), outside);
}

#[test]
fn loopback_is_up_inside_a_new_namespace() {
    let ns = NetNs::new(PREFIX).unwrap();
    let echoed = ns.run(|| {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        client
            .send_to(b"ping", server.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 8];
        let (len, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        buf[..len].to_vec()
    });
    assert_eq!(echoed, b"ping");
}

#[test]
fn namespace_is_deleted_on_drop() {
    let ns = NetNs::new(PREFIX).unwrap();
    let name = ns.name().to_owned();
    let path = ns.path();
    assert!(name.starts_with(&format!("{PREFIX}-{}-", std::process::id())));
    assert!(path.exists());
    drop(ns);
    assert!(!path.exists());
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list
        .lines()
        .any(|line| line.split_whitespace().next() == Some(&name)));
}

#[test]
fn names_are_unique_within_a_process() {
    let a = NetNs::new(PREFIX).unwrap();
    let b = NetNs::new(PREFIX).unwrap();
    assert_ne!(a.name(), b.name());
}

#[test]
fn panic_in_run_reaches_the_caller() {
    let ns = NetNs::new(PREFIX).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ns.run(|| panic!("boom inside the namespace"))
    }));
    let payload = result.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom inside the namespace")
    );
    // The namespace is still usable afterwards.
    assert_eq!(ns.run(|| 7), 7);
}

#[test]
fn veth_pair_carries_ping_between_namespaces() {
    let left = NetNs::new(PREFIX).unwrap();
    let right = NetNs::new(PREFIX).unwrap();
    let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
    create_veth_pair(
        VethEnd {
            ns: &left,
            name: "vleft",
            addresses: &[(v4("10.98.0.1"), 24), (v4("fd00:98::1"), 64)],
        },
        VethEnd {
            ns: &right,
            name: "vright",
            addresses: &[(v4("10.98.0.2"), 24), (v4("fd00:98::2"), 64)],
        },
    )
    .unwrap();
    for (from, target) in [
        (&left, "10.98.0.2"),
        (&right, "10.98.0.1"),
        (&left, "fd00:98::2"),
    ] {
        let output = from
            .command("ping")
            .args(["-c1", "-W1", target])
            .stdin(Stdio::null())
            .output()
            .expect("ping must be installed (apt-get install iputils-ping)");
        assert!(
            output.status.success(),
            "ping {target} from {}: {}{}",
            from.name(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("1 received"));
    }
}

#[test]
fn veth_rejects_bad_interface_names() {
    let ns = NetNs::new(PREFIX).unwrap();
    let end = |name| VethEnd {
        ns: &ns,
        name,
        addresses: &[],
    };
    for bad in ["", "way-too-long-name", "a b", "a/b"] {
        let error = create_veth_pair(end(bad), end("ok0")).unwrap_err();
        assert!(
            matches!(&error, NetNsError::InvalidInterfaceName(n) if n == bad),
            "{bad:?}: {error}"
        );
    }
}

#[test]
fn failing_ip_commands_report_their_stderr() {
    let ns = NetNs::new(PREFIX).unwrap();
    let error = ns.ip(&["link", "set", "nosuchdev0", "up"]).unwrap_err();
    match &error {
        NetNsError::IpCommandFailed { args, stderr, .. } => {
            assert_eq!(args[..2], ["-n".to_owned(), ns.name().to_owned()]);
            assert!(stderr.contains("nosuchdev0"), "{stderr}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(error.as_str(), "ip_command_failed");
}

#[test]
fn tracked_children_are_killed_when_the_namespace_drops() {
    let ns = NetNs::new(PREFIX).unwrap();
    let pid = ns
        .spawn_tracked(ns.command("sleep").arg("30").stdin(Stdio::null()))
        .unwrap();
    assert!(is_alive(pid));
    drop(ns);
    // Killed and reaped, so the pid is gone (not even a zombie).
    assert!(!is_alive(pid));
}

#[test]
fn tracked_child_can_be_waited_for() {
    let ns = NetNs::new(PREFIX).unwrap();
    let pid = ns
        .spawn_tracked(
            ns.command("ip")
                .args(["-o", "link", "show", "lo"])
                .stdout(Stdio::piped()),
        )
        .unwrap();
    let output = ns.wait_tracked(pid).unwrap().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("lo:") && stdout.contains(",UP"), "{stdout}");
    assert!(ns.wait_tracked(pid).is_none());
}

#[test]
fn sweep_removes_only_namespaces_of_dead_processes() {
    // Our pid in the prefix keeps parallel runs of this test apart.
    let prefix = format!("sstpd-sweeptest{}", std::process::id());
    let mut exited = Command::new("true").spawn().unwrap();
    exited.wait().unwrap();
    let stale = format!("{prefix}-{}-0", exited.id());
    let status = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(status.success());
    let live = NetNs::new(&prefix).unwrap();

    let deleted = NetNs::sweep_stale(&prefix);

    assert_eq!(deleted, vec![stale.clone()]);
    assert!(!std::path::Path::new("/run/netns").join(&stale).exists());
    assert!(live.path().exists());
}
