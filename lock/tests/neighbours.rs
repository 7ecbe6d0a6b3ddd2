//! Lock files in a directory other users can write: what a neighbour plants at a lock file's
//! name is refused and left byte for byte as it was, and a database shared by a group can be
//! locked — bell included — by every user of the group.
//!
//! Guards against the symlink attack on lock files (CWE-59): litekeep used to follow a link
//! planted at `<db>.lock`, write its holder record into the file it pointed to and grow that
//! file to two pages; and it created lock files with the process's umask, so that under umask
//! 022 the next user of a group got no bell and no holder record.
#![cfg(not(loom))]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use litekeep_faults::harness::{self, Child, Scratch};
use litekeep_lock::{FileLock, Found, LockError, Wait, lock_path_for, write_gate_path_for};

const VICTIM: &[u8] = b"IMPORTANT USER DATA\n";

/// A file of the neighbour's victim, and its bytes, to compare after.
fn victim(dir: &Path) -> PathBuf {
    let path = dir.join("victim.txt");
    fs::write(&path, VICTIM).unwrap();
    path
}

fn assert_victim_unchanged(path: &Path) {
    assert_eq!(
        fs::read(path).unwrap(),
        VICTIM,
        "{} was written to",
        path.display()
    );
}

/// Every way in to a database's lock files: its schema lock, its write gate, a plain open.
fn every_opening(db: &Path) -> Vec<(PathBuf, Result<FileLock, LockError>)> {
    vec![
        (lock_path_for(db), FileLock::for_database(db)),
        (
            write_gate_path_for(db),
            FileLock::write_gate_for_database(db),
        ),
        (lock_path_for(db), FileLock::open(lock_path_for(db))),
    ]
}

fn refused(result: Result<FileLock, LockError>) -> (PathBuf, Found, String) {
    match result {
        Err(e @ LockError::Refused { .. }) => {
            let message = e.to_string();
            let LockError::Refused { path, found } = e else {
                unreachable!()
            };
            (path, found, message)
        }
        Err(other) => panic!("expected Refused, got {other}"),
        Ok(lock) => panic!("expected Refused, but {} was opened", lock.path().display()),
    }
}

#[test]
fn a_symlink_to_a_victim_is_refused_and_the_victim_left_as_it_was() {
    let dir = Scratch::new("nb-symlink");
    let victim = victim(&dir);
    let db = dir.join("app.db");
    std::os::unix::fs::symlink(&victim, lock_path_for(&db)).unwrap();
    std::os::unix::fs::symlink(&victim, write_gate_path_for(&db)).unwrap();
    for (path, result) in every_opening(&db) {
        let (at, found, message) = refused(result);
        assert_eq!(at, path);
        assert_eq!(
            found,
            Found::Symlink {
                target: victim.clone()
            }
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("symbolic link"), "{message}");
    }
    assert_victim_unchanged(&victim);
    assert_eq!(fs::metadata(&victim).unwrap().len(), VICTIM.len() as u64);
}

#[test]
fn a_dangling_symlink_is_refused_and_nothing_is_created_where_it_points() {
    let dir = Scratch::new("nb-dangling");
    let db = dir.join("app.db");
    let target = dir.join("created-by-the-attack");
    std::os::unix::fs::symlink(&target, lock_path_for(&db)).unwrap();
    let (_, found, _) = refused(FileLock::for_database(&db));
    assert_eq!(
        found,
        Found::Symlink {
            target: target.clone()
        }
    );
    assert!(!target.exists(), "the link's target was created");
}

#[test]
fn a_file_of_another_program_is_refused_and_left_as_it_was() {
    let dir = Scratch::new("nb-foreign");
    let db = dir.join("app.db");
    fs::write(lock_path_for(&db), VICTIM).unwrap();
    let (_, found, message) = refused(FileLock::for_database(&db));
    assert!(matches!(found, Found::ForeignContent { ref start } if start.starts_with("IMPORTANT")));
    assert!(message.contains("another program's data"), "{message}");
    assert_victim_unchanged(&lock_path_for(&db));
    // Zeros followed by data is no lock file either.
    let mut zeros_then_data = vec![0u8; 3 * rustix::param::page_size()];
    zeros_then_data.extend_from_slice(VICTIM);
    fs::write(write_gate_path_for(&db), &zeros_then_data).unwrap();
    refused(FileLock::write_gate_for_database(&db));
    assert_eq!(fs::read(write_gate_path_for(&db)).unwrap(), zeros_then_data);
}

#[test]
fn a_hard_link_to_a_victim_is_refused() {
    let dir = Scratch::new("nb-hardlink");
    let victim = victim(&dir);
    let db = dir.join("app.db");
    fs::hard_link(&victim, lock_path_for(&db)).unwrap();
    let (_, found, _) = refused(FileLock::for_database(&db));
    // Its content is checked too, but the second name is found first.
    assert_eq!(found, Found::HardLinks { links: 2 });
    assert_victim_unchanged(&victim);
}

#[test]
fn a_fifo_and_a_directory_are_refused_without_waiting() {
    let dir = Scratch::new("nb-fifo");
    let db = dir.join("app.db");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        lock_path_for(&db),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o666),
        0,
    )
    .unwrap();
    // Nobody writes to the FIFO: an open that waited for a writer would hang here.
    let (_, found, _) = refused(FileLock::for_database(&db));
    assert_eq!(found, Found::Fifo);
    fs::create_dir(write_gate_path_for(&db)).unwrap();
    let (_, found, message) = refused(FileLock::write_gate_for_database(&db));
    assert_eq!(found, Found::Directory);
    assert!(message.contains("is a directory"), "{message}");
}

#[test]
fn empty_files_and_lock_files_of_other_versions_stay_usable() {
    let dir = Scratch::new("nb-usable");
    let page = rustix::param::page_size();
    // util-linux flock(1) and touch(1) make empty files.
    let empty = dir.join("empty.lock");
    fs::write(&empty, b"").unwrap();
    // Another version's holder record, with a bell page of words behind it.
    let other_version = dir.join("v2.lock");
    let mut bytes = b"litekeep-lock v2 pid=1 host=h since=1.0 label=x\n".to_vec();
    bytes.resize(2 * page, 0);
    bytes[page..page + 24].fill(0x5a);
    fs::write(&other_version, &bytes).unwrap();
    // A bell without a record (only shared holders so far).
    let bell_only = dir.join("bell.lock");
    let mut bytes = vec![0u8; 2 * page];
    bytes[page + 20..page + 24].copy_from_slice(&0x6c6b_0001u32.to_ne_bytes());
    fs::write(&bell_only, &bytes).unwrap();
    for path in [&empty, &other_version, &bell_only] {
        let lock = FileLock::open(path)
            .unwrap_or_else(|e| panic!("{} refused: {e}", path.display()))
            .with_label("usable");
        let guard = lock.exclusive(Wait::None).unwrap();
        drop(guard);
        let record = fs::read(path).unwrap();
        assert!(
            record.starts_with(b"litekeep-lock v1 "),
            "{}",
            path.display()
        );
    }
}

#[test]
fn new_lock_files_take_the_permissions_of_the_database() {
    let dir = Scratch::new("nb-mode");
    let db = dir.join("app.db");
    fs::write(&db, b"").unwrap();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o664)).unwrap();
    // The test process's umask (022 in CI) would give 0644.
    let _lock = FileLock::for_database(&db).unwrap();
    let _gate = FileLock::write_gate_for_database(&db).unwrap();
    for path in [lock_path_for(&db), write_gate_path_for(&db)] {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o664, "{}", path.display());
    }
    // An existing lock file keeps its own.
    let other = dir.join("other.db");
    fs::write(&other, b"").unwrap();
    fs::write(lock_path_for(&other), b"").unwrap();
    fs::set_permissions(lock_path_for(&other), fs::Permissions::from_mode(0o600)).unwrap();
    let _lock = FileLock::for_database(&other).unwrap();
    let mode = fs::metadata(lock_path_for(&other))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

// ---------------------------------------------------------------------------------------------
// A database shared by a group, with real users.

/// User A and user B, both of group G (their primary group), neither root.
const GROUP: u32 = 61_000;
const USER_A: u32 = 61_001;
const USER_B: u32 = 61_002;

/// NOT A REAL TEST: the entry point of the child processes the tests below spawn. Without a
/// role it returns at once and passes.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    // The common umask, under which a lock file would be created 0644.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o022));
    let db = harness::db();
    let lock = FileLock::for_database(&db)
        .unwrap_or_else(|e| panic!("{role}: {e}"))
        .with_label(&role);
    match role.as_str() {
        // Takes the lock, holds it until stdin closes, then lets it go; once user B holds it,
        // waits for it again (queued on the bell), says so once it has it, and lets it go.
        // (Asking at once could re-take it ahead of B: a process that did not queue may go
        // first for a slice.)
        "user-a" => {
            let guard = lock.exclusive(Wait::None).unwrap();
            harness::say("HELD");
            harness::until_stdin_closes();
            drop(guard);
            let until = std::time::Instant::now() + Duration::from_secs(30);
            while !String::from_utf8_lossy(&fs::read(lock_path_for(&db)).unwrap())
                .contains("label=user-b")
            {
                assert!(std::time::Instant::now() < until, "user B never held");
                std::thread::sleep(Duration::from_millis(1));
            }
            let again = lock
                .exclusive(Wait::Timeout(Duration::from_secs(30)))
                .unwrap();
            harness::say("HELD-AGAIN");
            drop(again);
        }
        // Waits for the lock (queued on the bell), holds it until stdin closes, then lets it go.
        "user-b" => {
            harness::say("WAITING");
            let guard = lock
                .exclusive(Wait::Timeout(Duration::from_secs(30)))
                .unwrap();
            harness::say("HELD");
            harness::until_stdin_closes();
            drop(guard);
            harness::say("RELEASED");
        }
        other => panic!("unknown role {other}"),
    }
}

fn bell_word(path: &Path, index: u64) -> u32 {
    use std::os::unix::fs::FileExt;
    let mut word = [0u8; 4];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut word, rustix::param::page_size() as u64 + 4 * index)
        .unwrap();
    u32::from_ne_bytes(word)
}

/// Waits (bounded) until `what` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + harness::BOUND;
    while !check() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_second_user_of_the_group_takes_the_lock_and_rings_the_bell() {
    if !harness::is_root() {
        eprintln!("skipped: running children as other users needs root");
        return;
    }
    let dir = Scratch::new("nb-group");
    // A group's folder: setgid, writable by the group, not by others.
    let shared = dir.join("team");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    rustix::fs::chown(
        &shared,
        Some(rustix::process::Uid::from_raw(USER_A)),
        Some(rustix::process::Gid::from_raw(GROUP)),
    )
    .unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o2770)).unwrap();
    // User A's database, shared with the group.
    let db = shared.join("app.db");
    fs::write(&db, b"").unwrap();
    rustix::fs::chown(
        &db,
        Some(rustix::process::Uid::from_raw(USER_A)),
        Some(rustix::process::Gid::from_raw(GROUP)),
    )
    .unwrap();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o664)).unwrap();
    let lock_file = lock_path_for(&db);

    // User A creates the lock file under umask 022 and holds the lock.
    let mut a = Child::build("user-a")
        .db(&db)
        .entry("child_process_entry")
        .as_user(USER_A, GROUP)
        .spawn();
    a.expect_line("HELD");
    let meta = fs::metadata(&lock_file).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o664,
        "the lock file's mode"
    );
    assert_eq!((meta.uid(), meta.gid()), (USER_A, GROUP));

    // User B queues on the bell: only a writable descriptor can.
    let mut b = Child::build("user-b")
        .db(&db)
        .entry("child_process_entry")
        .as_user(USER_B, GROUP)
        .spawn();
    b.expect_line("WAITING");
    eventually("user B is counted on the bell", || {
        bell_word(&lock_file, 1) == 1
    });
    a.close_stdin();
    b.expect_line("HELD");
    let record = fs::read(&lock_file).unwrap();
    assert!(
        String::from_utf8_lossy(&record).contains("label=user-b"),
        "user B could not write its holder record"
    );

    // User A queues behind B; B's release rings the bell that wakes A.
    eventually("user A is counted on the bell", || {
        bell_word(&lock_file, 1) == 1
    });
    let rung_before = bell_word(&lock_file, 0);
    b.close_stdin();
    b.expect_line("RELEASED");
    a.expect_line("HELD-AGAIN");
    assert_ne!(
        bell_word(&lock_file, 0),
        rung_before,
        "user B's release rang no bell"
    );
    a.wait().assert_success();
    b.wait().assert_success();
}

#[test]
fn root_gives_a_new_lock_file_the_database_owner_and_group() {
    if !harness::is_root() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let dir = Scratch::new("nb-root");
    let db = dir.join("app.db");
    fs::write(&db, b"").unwrap();
    rustix::fs::chown(
        &db,
        Some(rustix::process::Uid::from_raw(USER_A)),
        Some(rustix::process::Gid::from_raw(GROUP)),
    )
    .unwrap();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o660)).unwrap();
    let _lock = FileLock::for_database(&db).unwrap();
    let meta = fs::metadata(lock_path_for(&db)).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (USER_A, GROUP));
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}
