//! The owner's files in a directory other users can write, under the rules of the lock files'
//! (`litekeep_lock`'s sidecar files): what a neighbour plants at the owner lock's name is
//! refused, naming it, and left byte for byte as it was; what is planted at a socket's name is
//! never written through, chmod'ed or removed — the owner binds the next generation's name,
//! or, when every name it tries is taken, fails with an error naming the path; and the owner
//! lock file takes the database's permissions.
//!
//! Guards against the symlink attack on lock files (CWE-59) for the owner's files: a link
//! planted at `<db>.owner.lock` would have the owner write its holder record into the file it
//! points to, and a `chmod` of the socket's name would change the mode of a file of the victim's.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Req, Resp, TestService};
use litekeep_faults::harness::{self, Child, Scratch};
use litekeep_lock::{Found, LockError};
use litekeep_owner::{Node, Options, OwnerError, owner_lock_path, socket_name};

const VICTIM: &[u8] = b"IMPORTANT USER DATA\n";

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    assert!(common::run_role(&role), "unknown role {role}");
}

fn join(db: &Path) -> Result<Node<TestService>, OwnerError> {
    let options = Options::new("neighbours", "1.0").timeout(Duration::from_secs(5));
    Node::join(db, TestService::default(), options)
}

/// A database file (empty: the owner crate never opens it) and a victim file of mode 0600.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let db = dir.join("app.db");
    fs::write(&db, b"").unwrap();
    let victim = dir.join("victim.txt");
    fs::write(&victim, VICTIM).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    (db, victim)
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn assert_untouched(path: &Path, bytes: &[u8], mode_was: u32) {
    assert_eq!(
        fs::read(path).unwrap(),
        bytes,
        "{} was written",
        path.display()
    );
    assert_eq!(mode(path), mode_was, "{} was chmod'ed", path.display());
}

fn socket_path(db: &Path, generation: u64) -> PathBuf {
    db.with_file_name(socket_name("app.db", generation))
}

/// The path and what was found, from a join refused for its owner lock file.
fn refused(result: Result<Node<TestService>, OwnerError>) -> (PathBuf, Found, String) {
    match result {
        Err(e @ OwnerError::Lock(LockError::Refused { .. })) => {
            let message = e.to_string();
            let OwnerError::Lock(LockError::Refused { path, found }) = e else {
                unreachable!()
            };
            (path, found, message)
        }
        Err(other) => panic!("expected Refused, got {other}"),
        Ok(node) => panic!("expected Refused, but joined: {node:?}"),
    }
}

#[test]
fn a_symlink_at_the_owner_lock_is_refused_naming_it_and_the_victim_is_left_as_it_was() {
    let dir = Scratch::new("owner-nb-symlink");
    let (db, victim) = setup(&dir);
    std::os::unix::fs::symlink(&victim, owner_lock_path(&db)).unwrap();
    let (path, found, message) = refused(join(&db));
    assert_eq!(path, owner_lock_path(&db));
    assert_eq!(
        found,
        Found::Symlink {
            target: victim.clone()
        }
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("symbolic link"), "{message}");
    assert_untouched(&victim, VICTIM, 0o600);
    // A dangling one: nothing is created where it points.
    fs::remove_file(owner_lock_path(&db)).unwrap();
    let target = dir.join("made-by-the-attack");
    std::os::unix::fs::symlink(&target, owner_lock_path(&db)).unwrap();
    let (_, found, _) = refused(join(&db));
    assert_eq!(
        found,
        Found::Symlink {
            target: target.clone()
        }
    );
    assert!(!target.exists(), "the link's target was created");
}

#[test]
fn a_file_of_another_program_at_the_owner_lock_is_refused_and_left_as_it_was() {
    let dir = Scratch::new("owner-nb-foreign");
    let (db, _) = setup(&dir);
    let lock = owner_lock_path(&db);
    fs::write(&lock, VICTIM).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).unwrap();
    let (path, found, message) = refused(join(&db));
    assert_eq!(path, lock);
    assert!(
        matches!(found, Found::ForeignContent { ref start } if start.starts_with("IMPORTANT")),
        "{found:?}"
    );
    assert!(message.contains("another program's data"), "{message}");
    assert_untouched(&lock, VICTIM, 0o644);
}

#[test]
fn what_is_planted_at_a_socket_name_is_never_written_through_chmoded_or_removed() {
    let dir = Scratch::new("owner-nb-socket");
    let (db, victim) = setup(&dir);
    // The first owner's name (generation 1): a link to the victim; generation 2's: a regular
    // file of the neighbour's; generation 3's: a link to nothing yet.
    std::os::unix::fs::symlink(&victim, socket_path(&db, 1)).unwrap();
    fs::write(socket_path(&db, 2), VICTIM).unwrap();
    fs::set_permissions(socket_path(&db, 2), fs::Permissions::from_mode(0o640)).unwrap();
    let target = dir.join("made-by-the-attack");
    std::os::unix::fs::symlink(&target, socket_path(&db, 3)).unwrap();

    let node = join(&db).expect("the owner binds a name nobody took");
    assert!(node.is_owner());
    assert_eq!(
        node.generation(),
        Some(4),
        "generations 1 to 3 were passed over"
    );
    assert_eq!(node.call(Req::Pid).unwrap(), Resp::Pid(std::process::id()));
    // Another process finds it through the owner lock's record, and is served.
    let client = Child::build("call-once").db(&db).run();
    assert_eq!(
        client.find("OK "),
        Some(std::process::id().to_string().as_str()),
        "{}",
        client.describe()
    );
    drop(node);

    assert_untouched(&victim, VICTIM, 0o600);
    assert_eq!(fs::read_link(socket_path(&db, 1)).unwrap(), victim);
    assert_untouched(&socket_path(&db, 2), VICTIM, 0o640);
    assert_eq!(fs::read_link(socket_path(&db, 3)).unwrap(), target);
    assert!(!target.exists(), "the link's target was created");
    assert!(
        !socket_path(&db, 4).exists(),
        "the owner removed its own socket when it left"
    );
}

#[test]
fn an_owner_whose_every_socket_name_is_taken_fails_with_an_error_naming_the_path() {
    let dir = Scratch::new("owner-nb-all-taken");
    let (db, _) = setup(&dir);
    for generation in 1..=9 {
        fs::write(socket_path(&db, generation), VICTIM).unwrap();
    }
    let err = join(&db).expect_err("every name it tries is taken");
    let message = err.to_string();
    match &err {
        OwnerError::Io { path, op, source } => {
            assert_eq!(path, &socket_path(&db, 9));
            assert_eq!(*op, "binding the owner's socket");
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(
        message.contains(&socket_path(&db, 9).display().to_string()),
        "{message}"
    );
    assert!(message.contains("a regular file"), "{message}");
    for generation in 1..=9 {
        let path = socket_path(&db, generation);
        assert_eq!(fs::read(&path).unwrap(), VICTIM, "{}", path.display());
    }
}

#[test]
fn the_owner_lock_file_and_the_socket_take_the_permissions_of_the_database() {
    let dir = Scratch::new("owner-nb-mode");
    let (db, _) = setup(&dir);
    // Under the common umask 022 a new file would be 0644, and a group could not lock it.
    fs::set_permissions(&db, fs::Permissions::from_mode(0o664)).unwrap();
    if harness::is_root() {
        std::os::unix::fs::chown(&db, Some(61_001), Some(61_000)).unwrap();
    }
    let node = join(&db).unwrap();
    let generation = node.generation().unwrap();
    let lock = owner_lock_path(&db);
    assert_eq!(mode(&lock), 0o664, "{}", lock.display());
    if harness::is_root() {
        let meta = fs::metadata(&lock).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (61_001, 61_000));
    }
    // The socket: read and write for whoever may write the database.
    let socket = socket_path(&db, generation);
    assert_eq!(mode(&socket), 0o660, "{}", socket.display());
    drop(node);
    // An existing owner lock file keeps its own.
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).unwrap();
    drop(join(&db).unwrap());
    assert_eq!(mode(&lock), 0o600);
}
