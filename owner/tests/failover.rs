//! Election and failover with real processes: an owner SIGKILLed is replaced by one of its
//! clients, which removes the dead owner's socket; a database deep in a tree works.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{numbers, sockets};
use litekeep_faults::harness::{self, Child, Scratch};

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    assert!(common::run_role(&role), "unknown role {role}");
}

/// An owner, three clients, then five rounds of: SIGKILL the owner, check that every client
/// sees the same new owner (one of them), that the dead owner's socket is gone and the new
/// one's is there, and start a new client in the killed one's place.
fn failover_rounds(db: &Path, rounds: usize) {
    std::fs::write(db, b"").unwrap();
    let owner = Child::build("own").db(db).spawn();
    let line = owner.expect_line("OWNER ");
    let [pid, generation] = numbers(&line, "OWNER ")[..] else {
        panic!("{line}")
    };
    assert_eq!(sockets(db), [generation]);
    let mut clients: Vec<Child> = (0..3)
        .map(|_| Child::build("client").db(db).spawn())
        .collect();
    for c in &clients {
        assert_eq!(numbers(&c.expect_line("SAW "), "SAW ")[0], pid);
    }
    let (mut dead, mut generation) = (owner, generation);
    for round in 0..rounds {
        let killed_pid = dead.pid();
        assert!(dead.kill().killed(), "round {round}: the owner was running");
        let seen: Vec<u64> = clients
            .iter()
            .map(|c| numbers(&c.expect_line("SAW "), "SAW ")[0])
            .collect();
        let new_owner = seen[0];
        assert!(
            seen.iter().all(|&p| p == new_owner),
            "round {round}: {seen:?}"
        );
        assert_ne!(new_owner, u64::from(killed_pid));
        let at = clients
            .iter()
            .position(|c| u64::from(c.pid()) == new_owner)
            .unwrap_or_else(|| panic!("round {round}: owner {new_owner} is none of the clients"));
        let now = sockets(db);
        assert_eq!(
            now.len(),
            1,
            "round {round}: only the new owner's socket: {now:?}"
        );
        assert!(
            now[0] > generation,
            "round {round}: {now:?} after {generation}"
        );
        generation = now[0];
        dead = clients.remove(at);
        let fresh = Child::build("client").db(db).spawn();
        assert_eq!(numbers(&fresh.expect_line("SAW "), "SAW ")[0], new_owner);
        clients.push(fresh);
    }
    for c in clients {
        let done = c.finish();
        assert!(numbers(&done, "DONE ")[0] > 0, "{done}");
    }
    let last = dead.finish();
    assert!(last.starts_with("DONE "), "{last}");
    assert!(
        sockets(db).is_empty(),
        "the last owner removed its socket when it left"
    );
}

#[test]
fn a_sigkilled_owner_is_replaced_by_a_client_that_removes_its_socket() {
    let dir = Scratch::new("owner-failover");
    failover_rounds(&dir.join("app.db"), 5);
}

#[test]
fn a_database_deep_in_a_tree_works_past_the_socket_path_limit() {
    let dir = Scratch::new("owner-deep");
    let deep = dir
        .join("d".repeat(50))
        .join("e".repeat(50))
        .join("f".repeat(50));
    std::fs::create_dir_all(&deep).unwrap();
    let db = deep.join("app.db");
    assert!(db.as_os_str().len() > 108, "{}", db.display());
    failover_rounds(&db, 2);
}

#[test]
fn an_owner_that_leaves_hands_its_clients_to_a_new_one() {
    let dir = Scratch::new("owner-leave");
    let db = dir.join("app.db");
    std::fs::write(&db, b"").unwrap();
    let mut owner = Child::build("own").db(&db).spawn();
    let pid = numbers(&owner.expect_line("OWNER "), "OWNER ")[0];
    let client = Child::build("client").db(&db).spawn();
    assert_eq!(numbers(&client.expect_line("SAW "), "SAW ")[0], pid);
    owner.close_stdin();
    owner.expect_line("STEPPED DOWN");
    owner.wait().assert_success();
    let line = client.expect_line("SAW ");
    assert_eq!(numbers(&line, "SAW ")[0], u64::from(client.pid()), "{line}");
    std::thread::sleep(Duration::from_millis(50));
    let done = client.finish();
    assert_eq!(
        numbers(&done, "DONE ")[1],
        0,
        "a clean step-down loses no call: {done}"
    );
}
