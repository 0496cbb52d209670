//! `core.files`: `list`, `read`, `write`, `append`, `move`, `copy`, `remove`, `rename`,
//! `exists` and `stat`, confined to the job's `files:` roots.
//!
//! Every path must be absolute. It is resolved as the kernel would: the longest part of it
//! that exists is canonicalized (following every symlink and `..` in it) and the rest, which
//! must not climb with `..`, is appended. The result must lie under one of the job's roots
//! (themselves canonicalized), and the operation then works on that resolved path, not on the
//! one written. So `..` that climbs out, and a symlink anywhere that leads outside every root,
//! are refused; a symlink inside a root that leads to another place inside is followed.
//!
//! Functions that read or write contents (`list`, `read`, `write`, `append`, `copy`) follow
//! a symlink in the last component. Those that act on an entry itself (`stat`, `exists`,
//! `remove`, `rename`, `move`) resolve only its directory, so `stat` of a symlink says `link`
//! and `remove` of one removes the link, never its target.
//!
//! Between the check and the use another process may swap a directory for a symlink (a
//! time-of-check to time-of-use race): the check cannot rule that out. Files are therefore opened
//! with `O_NOFOLLOW`, so a last component that became a symlink (or a dangling one) is refused
//! by the kernel, and with `O_NONBLOCK` so that a FIFO cannot hang the run. A swapped
//! directory higher up remains possible; the roots should not be writable by untrusted users.
//!
//! This file is the operations; `scope` checks and resolves the paths they are given.

mod scope;

use std::fs::{self, File, FileType, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use mlua::{Lua, MultiValue, Table, Value};
use nix::libc;

use self::scope::Scope;
use super::args::describe_arg;
use super::{context, fail};
use crate::config::Capability;

/// Largest file `core.files.read` returns.
const MAX_READ: u64 = 16 << 20;

/// Why an operation did not give a value: a message for `nil, err`, or a Lua error (out of
/// memory) that must raise.
enum Failure {
    Message(String),
    Lua(mlua::Error),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Message(message)
    }
}

impl From<mlua::Error> for Failure {
    fn from(error: mlua::Error) -> Failure {
        Failure::Lua(error)
    }
}

type Outcome = Result<Value, Failure>;
type Op = fn(&Lua, &Scope, &[Value]) -> Outcome;

/// Registers `core.files`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    let files = lua.create_table()?;
    let ops: [(&'static str, Op); 10] = [
        ("list", list),
        ("read", read),
        ("write", |lua, scope, args| put(lua, scope, args, false)),
        ("append", |lua, scope, args| put(lua, scope, args, true)),
        ("move", move_),
        ("copy", copy),
        ("remove", remove),
        ("rename", rename),
        ("exists", exists),
        ("stat", stat),
    ];
    for (fun, op) in ops {
        files.raw_set(
            fun,
            lua.create_function(move |lua, args: MultiValue| -> mlua::Result<MultiValue> {
                let scope = {
                    let ops = context(lua)?;
                    let what = format!("core.files.{fun}");
                    if let Err(denied) = ops.require(Capability::Files, &what) {
                        return fail(lua, denied);
                    }
                    Scope::new(fun, &ops.grants)
                };
                let args: Vec<Value> = args.into_iter().collect();
                match op(lua, &scope, &args) {
                    Ok(value) => Ok(MultiValue::from_iter([value])),
                    Err(Failure::Message(message)) => fail(lua, message),
                    Err(Failure::Lua(error)) => Err(error),
                }
            })?,
        )?;
    }
    files.set_readonly(true);
    core.raw_set("files", files)
}

/// Opens a file without following a symlink in its last component and without waiting on a
/// FIFO, and checks that it is a regular file.
fn open(
    scope: &Scope,
    path: &Path,
    given: &Path,
    options: &mut OpenOptions,
) -> Result<File, String> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| scope.io(given, &e, "a file"))?;
    let kind = file
        .metadata()
        .map_err(|e| scope.io(given, &e, "a file"))?
        .file_type();
    if kind.is_file() {
        Ok(file)
    } else {
        Err(format!(
            "core.files.{}: {} is a {}: expected a file",
            scope.fun,
            given.display(),
            kind_name(kind)
        ))
    }
}

fn kind_name(kind: FileType) -> &'static str {
    if kind.is_symlink() {
        "link"
    } else if kind.is_dir() {
        "dir"
    } else if kind.is_file() {
        "file"
    } else {
        "other"
    }
}

fn text_arg(scope: &Scope, args: &[Value], index: usize) -> Result<Vec<u8>, String> {
    match args.get(index) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        other => Err(format!(
            "core.files.{}: text is {}: expected a string",
            scope.fun,
            describe_arg(other)
        )),
    }
}

fn list(lua: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let given = scope.path_arg(args, 0, "dir")?;
    let dir = scope.resolve(&given)?;
    let entries = fs::read_dir(&dir).map_err(|e| scope.io(&given, &e, "a directory"))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| scope.io(&given, &e, "a readable directory"))?;
        names.push(entry.file_name().as_bytes().to_vec());
    }
    names.sort();
    let table = lua.create_table_with_capacity(names.len(), 0)?;
    for (i, name) in names.iter().enumerate() {
        table.raw_set(i + 1, lua.create_string(name)?)?;
    }
    Ok(Value::Table(table))
}

fn read(lua: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let given = scope.path_arg(args, 0, "path")?;
    let path = scope.resolve(&given)?;
    let file = open(scope, &path, &given, OpenOptions::new().read(true))?;
    let mut data = Vec::new();
    file.take(MAX_READ + 1)
        .read_to_end(&mut data)
        .map_err(|e| scope.io(&given, &e, "a readable file"))?;
    if data.len() as u64 > MAX_READ {
        return Err(format!(
            "core.files.read: {} is larger than 16 MiB: expected a file of at most 16 MiB",
            given.display()
        )
        .into());
    }
    Ok(Value::String(lua.create_string(&data)?))
}

/// `write` (replacing the contents) and `append`.
fn put(_: &Lua, scope: &Scope, args: &[Value], append: bool) -> Outcome {
    let given = scope.path_arg(args, 0, "path")?;
    let text = text_arg(scope, args, 1)?;
    let path = scope.resolve(&given)?;
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    let mut file = open(scope, &path, &given, &mut options)?;
    io::Write::write_all(&mut file, &text).map_err(|e| scope.io(&given, &e, "a writable file"))?;
    Ok(Value::Boolean(true))
}

/// Copies the contents of the file `from` into `to` (created or replaced), with its mode.
fn copy_file(scope: &Scope, from: (&Path, &Path), to: (&Path, &Path)) -> Result<(), String> {
    let (from, from_given) = from;
    let (to, to_given) = to;
    let mut source = open(scope, from, from_given, OpenOptions::new().read(true))?;
    let mut target = open(
        scope,
        to,
        to_given,
        OpenOptions::new().write(true).create(true),
    )?;
    let (source_meta, target_meta) = match (source.metadata(), target.metadata()) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return Err(scope.io(from_given, &e, "a file")),
    };
    if (source_meta.dev(), source_meta.ino()) == (target_meta.dev(), target_meta.ino()) {
        return Err(format!(
            "core.files.{}: {} and {} are the same file: expected two different files",
            scope.fun,
            from_given.display(),
            to_given.display()
        ));
    }
    target
        .set_len(0)
        .and_then(|()| io::copy(&mut source, &mut target))
        .and_then(|_| target.set_permissions(source_meta.permissions()))
        .map_err(|e| scope.io(to_given, &e, "a writable file"))
}

fn copy(_: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let from_given = scope.path_arg(args, 0, "from")?;
    let to_given = scope.path_arg(args, 1, "to")?;
    let from = scope.resolve(&from_given)?;
    let to = scope.resolve(&to_given)?;
    copy_file(scope, (&from, &from_given), (&to, &to_given))?;
    Ok(Value::Boolean(true))
}

fn move_(_: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let from_given = scope.path_arg(args, 0, "from")?;
    let to_given = scope.path_arg(args, 1, "to")?;
    let from = scope.entry(&from_given, true)?;
    let to = scope.entry(&to_given, true)?;
    match fs::rename(&from, &to) {
        Ok(()) => {}
        // Another file system: a file is copied, then removed.
        Err(e)
            if e.kind() == ErrorKind::CrossesDevices
                && fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) =>
        {
            copy_file(scope, (&from, &from_given), (&to, &to_given))?;
            fs::remove_file(&from).map_err(|e| scope.io(&from_given, &e, "a removable file"))?;
        }
        Err(e) => return Err(rename_error(scope, &from_given, &to_given, &from, &e).into()),
    }
    Ok(Value::Boolean(true))
}

/// Names the path a failed rename is about: `from` when it is missing, else `to`.
fn rename_error(
    scope: &Scope,
    from_given: &Path,
    to_given: &Path,
    from: &Path,
    e: &io::Error,
) -> String {
    if fs::symlink_metadata(from).is_err() {
        scope.io(from_given, e, "an existing file or directory")
    } else {
        scope.io(
            to_given,
            e,
            "a path in an existing directory, not a directory in the way",
        )
    }
}

fn rename(_: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let from_given = scope.path_arg(args, 0, "from")?;
    let from = scope.entry(&from_given, true)?;
    let Some(dir) = from.parent() else {
        return Err(format!(
            "core.files.rename: {} has no directory",
            from_given.display()
        )
        .into());
    };
    let (to, to_given) = match args.get(1) {
        // A bare name is a new name in the same directory.
        Some(Value::String(name)) if !name.as_bytes().contains(&b'/') => {
            let name = name.as_bytes();
            if name.is_empty() || *name == *b"." || *name == *b".." || name.contains(&0) {
                return Err(format!(
                    "core.files.rename: {:?} is not a file name: expected a new name or an absolute path in the same directory",
                    String::from_utf8_lossy(&name)
                )
                .into());
            }
            let to = dir.join(std::ffi::OsStr::from_bytes(&name));
            let shown = from_given.parent().map_or_else(
                || to.clone(),
                |d| d.join(std::ffi::OsStr::from_bytes(&name)),
            );
            (to, shown)
        }
        _ => {
            let to_given = scope.path_arg(args, 1, "to")?;
            let to = scope.entry(&to_given, true)?;
            if to.parent() != Some(dir) {
                return Err(format!(
                    "core.files.rename: {} is not in the directory of {}: expected a new name in the same directory (core.files.move moves)",
                    to_given.display(),
                    from_given.display()
                )
                .into());
            }
            (to, to_given)
        }
    };
    fs::rename(&from, &to).map_err(|e| rename_error(scope, &from_given, &to_given, &from, &e))?;
    Ok(Value::Boolean(true))
}

fn remove(_: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let given = scope.path_arg(args, 0, "path")?;
    let path = scope.entry(&given, true)?;
    let expected = "a file or an empty directory";
    let meta = fs::symlink_metadata(&path).map_err(|e| scope.io(&given, &e, expected))?;
    let removed = if meta.is_dir() {
        fs::remove_dir(&path)
    } else {
        fs::remove_file(&path)
    };
    removed.map_err(|e| scope.io(&given, &e, expected))?;
    Ok(Value::Boolean(true))
}

fn exists(_: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let given = scope.path_arg(args, 0, "path")?;
    let path = scope.entry(&given, false)?;
    match fs::symlink_metadata(&path) {
        Ok(_) => Ok(Value::Boolean(true)),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            Ok(Value::Boolean(false))
        }
        Err(e) => Err(scope.io(&given, &e, "a path that can be checked").into()),
    }
}

fn stat(lua: &Lua, scope: &Scope, args: &[Value]) -> Outcome {
    let given = scope.path_arg(args, 0, "path")?;
    let path = scope.entry(&given, false)?;
    let meta = fs::symlink_metadata(&path)
        .map_err(|e| scope.io(&given, &e, "an existing file or directory"))?;
    let info = lua.create_table()?;
    info.raw_set("size", meta.len())?;
    info.raw_set("kind", kind_name(meta.file_type()))?;
    info.raw_set("modified", meta.mtime())?;
    info.raw_set("mode", meta.mode() & 0o7777)?;
    Ok(Value::Table(info))
}
