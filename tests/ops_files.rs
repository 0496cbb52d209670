//! `core.files` on a real temp directory with symlinks pointing inside and outside the root,
//! through real job files run by the runtime.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::runner::{SHOW, allowing, error_of, job_source, request, runner, shown, write_job};
use jobtop::config::Capability;
use jobtop::job::RunResult;
use jobtop::runtime::{JobGrants, RunOutcome, RunRequest};
use serde_json::Value as Json;

/// A temp directory holding `root/` (the job's root) and `outside/` beside it.
///
/// ```text
/// root/a.txt "alpha"   root/sub/b.txt "beta"   root/empty/   root/full/c.txt
/// root/link_in -> root/a.txt        root/link_dir_in -> root/sub
/// root/link_out -> outside/secret   root/link_dir_out -> outside
/// root/dangling -> outside/nothing-yet
/// outside/secret "secret"
/// ```
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("full")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("a.txt"), "alpha").unwrap();
    std::fs::write(root.join("sub/b.txt"), "beta").unwrap();
    std::fs::write(root.join("full/c.txt"), "gamma").unwrap();
    std::fs::write(outside.join("secret"), "secret").unwrap();
    symlink(root.join("a.txt"), root.join("link_in")).unwrap();
    symlink(root.join("sub"), root.join("link_dir_in")).unwrap();
    symlink(outside.join("secret"), root.join("link_out")).unwrap();
    symlink(&outside, root.join("link_dir_out")).unwrap();
    symlink(outside.join("nothing-yet"), root.join("dangling")).unwrap();
    Tree {
        _dir: dir,
        root,
        outside,
    }
}

/// Runs `body` with `R` (the root) and `O` (outside) defined, and `show(label, value, err)`
/// logging what a call returned.
fn run_with(tree: &Tree, body: &str, allow: Vec<Capability>) -> RunOutcome {
    let head = format!(
        "\nlocal job = core.job()\nlocal R = [[{root}]]\nlocal O = [[{outside}]]\n{SHOW}",
        root = tree.root.display(),
        outside = tree.outside.display()
    );
    let jobs = tempfile::tempdir().unwrap();
    let file = write_job(jobs.path(), "job.lua", &job_source(&head, body));
    let request = RunRequest {
        timeout: Duration::from_secs(10),
        memory: 64 << 20,
        ..request(
            file,
            "jobs/job.lua",
            JobGrants {
                files: vec![tree.root.clone()],
                ..allowing("x", allow)
            },
        )
    };
    let outcome = runner().run(&request);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    outcome
}

fn run(tree: &Tree, body: &str) -> RunOutcome {
    run_with(tree, body, vec![Capability::Files])
}

fn value(outcome: &RunOutcome, label: &str) -> Json {
    let shown = shown(outcome, label);
    assert!(shown.get("e").is_none(), "{label}: {shown}");
    shown["r"].clone()
}

fn outside_message(tree: &Tree, given: &Path, leads: Option<&Path>) -> String {
    let leads = leads.map_or(String::new(), |p| format!(" (it leads to {})", p.display()));
    format!(
        "core.files: {}{leads} is outside the roots of job x ({}): expected a path under them",
        given.display(),
        tree.root.display()
    )
}

#[test]
fn reading_and_inspecting() {
    let t = tree();
    std::fs::set_permissions(t.root.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let outcome = run(
        &t,
        r#"
  show("list", core.files.list(R))
  show("list_sub", core.files.list(R .. "/sub"))
  show("list_empty", #core.files.list(R .. "/empty"))
  show("list_link_dir_in", core.files.list(R .. "/link_dir_in"))
  show("read", core.files.read(R .. "/a.txt"))
  show("read_link_in", core.files.read(R .. "/link_in"))
  show("read_dotdot_inside", core.files.read(R .. "/sub/../a.txt"))
  show("exists", core.files.exists(R .. "/a.txt"))
  show("exists_dir", core.files.exists(R .. "/sub"))
  show("exists_missing", core.files.exists(R .. "/missing.txt"))
  show("exists_missing_deep", core.files.exists(R .. "/missing/deeper.txt"))
  show("exists_under_file", core.files.exists(R .. "/a.txt/x"))
  show("stat", core.files.stat(R .. "/a.txt"))
  show("stat_dir", core.files.stat(R .. "/sub"))
  show("stat_link", core.files.stat(R .. "/link_out"))
  show("stat_root", core.files.stat(R))
"#,
    );
    let list: Vec<String> = serde_json::from_value(value(&outcome, "list")).unwrap();
    assert_eq!(
        list,
        [
            "a.txt",
            "dangling",
            "empty",
            "full",
            "link_dir_in",
            "link_dir_out",
            "link_in",
            "link_out",
            "sub"
        ]
    );
    assert_eq!(value(&outcome, "list_sub"), serde_json::json!(["b.txt"]));
    assert_eq!(value(&outcome, "list_empty"), 0);
    assert_eq!(
        value(&outcome, "list_link_dir_in"),
        serde_json::json!(["b.txt"])
    );
    assert_eq!(value(&outcome, "read"), "alpha");
    assert_eq!(value(&outcome, "read_link_in"), "alpha");
    assert_eq!(value(&outcome, "read_dotdot_inside"), "alpha");
    assert_eq!(value(&outcome, "exists"), true);
    assert_eq!(value(&outcome, "exists_dir"), true);
    assert_eq!(value(&outcome, "exists_missing"), false);
    assert_eq!(value(&outcome, "exists_missing_deep"), false);
    assert_eq!(value(&outcome, "exists_under_file"), false);

    let stat = value(&outcome, "stat");
    assert_eq!(stat["size"], 5);
    assert_eq!(stat["kind"], "file");
    assert_eq!(stat["mode"], 0o640);
    let modified = std::fs::metadata(t.root.join("a.txt"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(stat["modified"], modified);
    assert_eq!(value(&outcome, "stat_dir")["kind"], "dir");
    assert_eq!(value(&outcome, "stat_link")["kind"], "link");
    assert_eq!(value(&outcome, "stat_root")["kind"], "dir");
}

#[test]
fn changing_files() {
    let t = tree();
    let outcome = run(
        &t,
        r#"
  show("write", core.files.write(R .. "/new.txt", "one"))
  show("append", core.files.append(R .. "/new.txt", " two"))
  show("append_new", core.files.append(R .. "/sub/log.txt", "first"))
  show("write_replaces", core.files.write(R .. "/sub/b.txt", "BETA"))
  show("write_link_in", core.files.write(R .. "/link_in", "ALPHA"))
  show("copy", core.files.copy(R .. "/new.txt", R .. "/sub/copy.txt"))
  show("move", core.files.move(R .. "/sub/copy.txt", R .. "/full/moved.txt"))
  show("move_dir", core.files.move(R .. "/empty", R .. "/full/empty_moved"))
  show("rename", core.files.rename(R .. "/full/moved.txt", "renamed.txt"))
  show("rename_path", core.files.rename(R .. "/full/renamed.txt", R .. "/full/again.txt"))
  show("remove", core.files.remove(R .. "/sub/log.txt"))
  show("remove_dir", core.files.remove(R .. "/full/empty_moved"))
  show("remove_link", core.files.remove(R .. "/link_out"))
  show("remove_dangling", core.files.remove(R .. "/dangling"))
"#,
    );
    for label in [
        "write",
        "append",
        "append_new",
        "write_replaces",
        "write_link_in",
        "copy",
        "move",
        "move_dir",
        "rename",
        "rename_path",
        "remove",
        "remove_dir",
        "remove_link",
        "remove_dangling",
    ] {
        assert_eq!(value(&outcome, label), true, "{label}");
    }
    let read = |p: &str| std::fs::read_to_string(t.root.join(p)).unwrap();
    assert_eq!(read("new.txt"), "one two");
    assert_eq!(read("sub/b.txt"), "BETA");
    assert_eq!(read("a.txt"), "ALPHA", "written through the link inside");
    assert!(
        std::fs::symlink_metadata(t.root.join("link_in"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read("full/again.txt"), "one two");
    assert!(!t.root.join("sub/copy.txt").exists());
    assert!(!t.root.join("full/moved.txt").exists());
    assert!(!t.root.join("full/renamed.txt").exists());
    assert!(!t.root.join("sub/log.txt").exists());
    assert!(!t.root.join("empty").exists());
    assert!(!t.root.join("full/empty_moved").exists());
    assert!(std::fs::symlink_metadata(t.root.join("link_out")).is_err());
    assert!(std::fs::symlink_metadata(t.root.join("dangling")).is_err());
    assert_eq!(
        std::fs::read_to_string(t.outside.join("secret")).unwrap(),
        "secret",
        "removing the link left its target alone"
    );
}

#[test]
fn escapes_are_refused() {
    let t = tree();
    let outcome = run(
        &t,
        r#"
  show("read_outside", core.files.read(O .. "/secret"))
  show("read_etc", core.files.read("/etc/passwd"))
  show("read_dotdot", core.files.read(R .. "/../outside/secret"))
  show("read_dotdot_deep", core.files.read(R .. "/sub/../../outside/secret"))
  show("read_link_out", core.files.read(R .. "/link_out"))
  show("read_through_link_dir", core.files.read(R .. "/link_dir_out/secret"))
  show("list_link_dir_out", core.files.list(R .. "/link_dir_out"))
  show("list_parent", core.files.list(R .. "/.."))
  show("write_link_dir_out", core.files.write(R .. "/link_dir_out/planted", "x"))
  show("write_link_out", core.files.write(R .. "/link_out", "overwritten"))
  show("append_outside", core.files.append(O .. "/new", "x"))
  show("copy_out", core.files.copy(R .. "/a.txt", O .. "/copied"))
  show("copy_in", core.files.copy(R .. "/link_out", R .. "/stolen"))
  show("move_out", core.files.move(R .. "/a.txt", R .. "/link_dir_out/a.txt"))
  show("move_in", core.files.move(O .. "/secret", R .. "/secret"))
  show("rename_other_dir", core.files.rename(R .. "/a.txt", O .. "/a.txt"))
  show("remove_outside", core.files.remove(O .. "/secret"))
  show("remove_through_link", core.files.remove(R .. "/link_dir_out/secret"))
  show("exists_outside", core.files.exists(O .. "/secret"))
  show("exists_outside_missing", core.files.exists(O .. "/missing"))
  show("stat_outside", core.files.stat(R .. "/link_dir_out/secret"))
  show("write_dangling", core.files.write(R .. "/dangling", "x"))
  show("write_through_dangling", core.files.write(R .. "/dangling/x", "x"))
"#,
    );
    let o = &t.outside;
    let r = &t.root;
    let secret = o.join("secret");
    let table: Vec<(&str, String)> = vec![
        ("read_outside", outside_message(&t, &secret, None)),
        (
            "read_etc",
            outside_message(&t, Path::new("/etc/passwd"), None),
        ),
        (
            "read_dotdot",
            outside_message(&t, &r.join("../outside/secret"), Some(&secret)),
        ),
        (
            "read_dotdot_deep",
            outside_message(&t, &r.join("sub/../../outside/secret"), Some(&secret)),
        ),
        (
            "read_link_out",
            outside_message(&t, &r.join("link_out"), Some(&secret)),
        ),
        (
            "read_through_link_dir",
            outside_message(&t, &r.join("link_dir_out/secret"), Some(&secret)),
        ),
        (
            "list_link_dir_out",
            outside_message(&t, &r.join("link_dir_out"), Some(o)),
        ),
        (
            "list_parent",
            outside_message(&t, &r.join(".."), r.parent()),
        ),
        (
            "write_link_dir_out",
            outside_message(
                &t,
                &r.join("link_dir_out/planted"),
                Some(&o.join("planted")),
            ),
        ),
        (
            "write_link_out",
            outside_message(&t, &r.join("link_out"), Some(&secret)),
        ),
        ("append_outside", outside_message(&t, &o.join("new"), None)),
        ("copy_out", outside_message(&t, &o.join("copied"), None)),
        (
            "copy_in",
            outside_message(&t, &r.join("link_out"), Some(&secret)),
        ),
        (
            "move_out",
            outside_message(&t, &r.join("link_dir_out/a.txt"), Some(&o.join("a.txt"))),
        ),
        ("move_in", outside_message(&t, &secret, None)),
        (
            "rename_other_dir",
            outside_message(&t, &o.join("a.txt"), None),
        ),
        ("remove_outside", outside_message(&t, &secret, None)),
        (
            "remove_through_link",
            outside_message(&t, &r.join("link_dir_out/secret"), Some(&secret)),
        ),
        ("exists_outside", outside_message(&t, &secret, None)),
        (
            "exists_outside_missing",
            outside_message(&t, &o.join("missing"), None),
        ),
        (
            "stat_outside",
            outside_message(&t, &r.join("link_dir_out/secret"), Some(&secret)),
        ),
        (
            "write_dangling",
            format!(
                "core.files.write: {} is a symbolic link, which is not followed here: expected a file",
                r.join("dangling").display()
            ),
        ),
        (
            "write_through_dangling",
            format!(
                "core.files.write: {} goes through {}, a symlink whose target does not exist: expected existing directories",
                r.join("dangling/x").display(),
                r.join("dangling").display()
            ),
        ),
    ];
    for (label, expected) in table {
        assert_eq!(error_of(&outcome, label), expected, "{label}");
    }
    // Nothing outside changed.
    let mut names: Vec<String> = std::fs::read_dir(o)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"]);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret");
    assert!(r.join("a.txt").exists());
    assert!(!r.join("stolen").exists());
}

#[test]
fn failures_are_nil_err() {
    let t = tree();
    let big = t.root.join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((16 << 20) + 1)
        .unwrap();
    let outcome = run(
        &t,
        r#"
  show("relative", core.files.read("a.txt"))
  show("not_string", core.files.read(42))
  show("no_path", core.files.list())
  show("read_missing", core.files.read(R .. "/missing.txt"))
  show("read_dir", core.files.read(R .. "/sub"))
  show("read_big", core.files.read(R .. "/big.bin"))
  show("list_missing", core.files.list(R .. "/missing"))
  show("list_file", core.files.list(R .. "/a.txt"))
  show("write_missing_dir", core.files.write(R .. "/missing/new.txt", "x"))
  show("write_dir", core.files.write(R .. "/sub", "x"))
  show("write_not_text", core.files.write(R .. "/n.txt", { 1 }))
  show("dotdot_after_missing", core.files.write(R .. "/missing/../x.txt", "x"))
  show("copy_missing", core.files.copy(R .. "/missing.txt", R .. "/c.txt"))
  show("copy_dir", core.files.copy(R .. "/sub", R .. "/c.txt"))
  show("copy_self", core.files.copy(R .. "/a.txt", R .. "/link_in"))
  show("move_missing", core.files.move(R .. "/missing.txt", R .. "/m.txt"))
  show("move_root", core.files.move(R, R .. "/sub/root"))
  show("rename_missing", core.files.rename(R .. "/missing.txt", "m.txt"))
  show("rename_bad_name", core.files.rename(R .. "/a.txt", ".."))
  show("rename_other_dir", core.files.rename(R .. "/a.txt", R .. "/sub/a.txt"))
  show("remove_missing", core.files.remove(R .. "/missing.txt"))
  show("remove_full_dir", core.files.remove(R .. "/full"))
  show("remove_root", core.files.remove(R))
  show("stat_missing", core.files.stat(R .. "/missing.txt"))
"#,
    );
    let r = &t.root;
    let p = |rel: &str| r.join(rel).display().to_string();
    let table: Vec<(&str, String)> = vec![
        (
            "relative",
            format!(
                "core.files.read: a.txt is a relative path: expected an absolute path under the roots of job x ({})",
                r.display()
            ),
        ),
        (
            "not_string",
            "core.files.read: path is the number 42: expected an absolute path (a string)".into(),
        ),
        (
            "no_path",
            "core.files.list: dir is missing: expected an absolute path (a string)".into(),
        ),
        (
            "read_missing",
            format!(
                "core.files.read: {} does not exist: expected a file",
                p("missing.txt")
            ),
        ),
        (
            "read_dir",
            format!("core.files.read: {} is a dir: expected a file", p("sub")),
        ),
        (
            "read_big",
            format!(
                "core.files.read: {} is larger than 16 MiB: expected a file of at most 16 MiB",
                p("big.bin")
            ),
        ),
        (
            "list_missing",
            format!(
                "core.files.list: {} does not exist: expected a directory",
                p("missing")
            ),
        ),
        (
            "list_file",
            format!(
                "core.files.list: {} is not a directory (or a part of it is not): expected a directory",
                p("a.txt")
            ),
        ),
        (
            "write_missing_dir",
            format!(
                "core.files.write: {} does not exist: expected a file",
                p("missing/new.txt")
            ),
        ),
        (
            "write_dir",
            format!(
                "core.files.write: {} is a directory: expected a file",
                p("sub")
            ),
        ),
        (
            "write_not_text",
            "core.files.write: text is a table: expected a string".into(),
        ),
        (
            "dotdot_after_missing",
            format!(
                "core.files.write: {} has `..` after a directory that does not exist: expected an existing directory before `..`",
                p("missing/../x.txt")
            ),
        ),
        (
            "copy_missing",
            format!(
                "core.files.copy: {} does not exist: expected a file",
                p("missing.txt")
            ),
        ),
        (
            "copy_dir",
            format!("core.files.copy: {} is a dir: expected a file", p("sub")),
        ),
        (
            "copy_self",
            format!(
                "core.files.copy: {} and {} are the same file: expected two different files",
                p("a.txt"),
                p("link_in")
            ),
        ),
        (
            "move_missing",
            format!(
                "core.files.move: {} does not exist: expected an existing file or directory",
                p("missing.txt")
            ),
        ),
        (
            "move_root",
            format!(
                "core.files.move: {} is a root of job x: expected a path under it",
                r.display()
            ),
        ),
        (
            "rename_missing",
            format!(
                "core.files.rename: {} does not exist: expected an existing file or directory",
                p("missing.txt")
            ),
        ),
        (
            "rename_bad_name",
            "core.files.rename: \"..\" is not a file name: expected a new name or an absolute path in the same directory".into(),
        ),
        (
            "rename_other_dir",
            format!(
                "core.files.rename: {} is not in the directory of {}: expected a new name in the same directory (core.files.move moves)",
                p("sub/a.txt"),
                p("a.txt")
            ),
        ),
        (
            "remove_missing",
            format!(
                "core.files.remove: {} does not exist: expected a file or an empty directory",
                p("missing.txt")
            ),
        ),
        (
            "remove_full_dir",
            format!(
                "core.files.remove: {} is a directory that is not empty: expected a file or an empty directory",
                p("full")
            ),
        ),
        (
            "remove_root",
            format!(
                "core.files.remove: {} is a root of job x: expected a path under it",
                r.display()
            ),
        ),
        (
            "stat_missing",
            format!(
                "core.files.stat: {} does not exist: expected an existing file or directory",
                p("missing.txt")
            ),
        ),
    ];
    for (label, expected) in table {
        assert_eq!(error_of(&outcome, label), expected, "{label}");
    }
    assert_eq!(std::fs::read_to_string(r.join("a.txt")).unwrap(), "alpha");
    assert!(r.join("full/c.txt").exists());
    assert!(!r.join("x.txt").exists());
}

#[test]
fn denied_without_the_capability() {
    let t = tree();
    let outcome = run_with(
        &t,
        r#"
  for _, name in ipairs({ "list", "read", "write", "append", "move", "copy", "remove", "rename", "exists", "stat" }) do
    show(name, core.files[name](R .. "/a.txt", R .. "/b.txt"))
  end
  show("readonly", pcall(function() core.files.read = nil end))
"#,
        vec![Capability::Exec, Capability::Network],
    );
    for name in [
        "list", "read", "write", "append", "move", "copy", "remove", "rename", "exists", "stat",
    ] {
        assert_eq!(
            error_of(&outcome, name),
            format!(
                "core.files.{name} is not allowed for job x: add `allow: [files]` to its entry in jobs.yaml"
            )
        );
    }
    assert_eq!(shown(&outcome, "readonly")["r"], false);
    assert!(t.root.join("a.txt").exists());
}
