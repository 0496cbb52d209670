//! Who is on the other end of the control socket: the peer's uid and gid come from the kernel
//! (`SO_PEERCRED`); names and group memberships from `/etc/passwd` and `/etc/group`.

use std::fs;

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// List, history, subscribe, and act.
    Operator,
    /// List, history and subscribe only.
    Viewer,
}

/// The user name of `uid`, or `uid N` when `/etc/passwd` does not list it.
pub fn user_name(uid: u32) -> String {
    passwd_entry(uid).map_or_else(|| format!("uid {uid}"), |(name, _)| name)
}

/// `(name, primary gid)` of `uid` from `/etc/passwd`.
fn passwd_entry(uid: u32) -> Option<(String, u32)> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 4 && fields[2].parse() == Ok(uid))
            .then(|| (fields[0].to_string(), fields[3].parse().unwrap_or(u32::MAX)))
    })
}

/// `(gid, members)` of the group called `name` in `/etc/group`.
fn group_entry(name: &str) -> Option<(u32, Vec<String>)> {
    let text = fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 4 && fields[0] == name).then(|| {
            let members = fields[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            (fields[2].parse().unwrap_or(u32::MAX), members)
        })
    })
}

/// Whether a group of that name exists.
pub fn group_exists(name: &str) -> bool {
    group_entry(name).is_some()
}

/// Whether `uid` (with primary group `gid`) belongs to the group `name`.
fn is_member(uid: u32, gid: u32, name: &str) -> bool {
    let Some((group_gid, members)) = group_entry(name) else {
        return false;
    };
    if group_gid == gid {
        return true;
    }
    passwd_entry(uid).is_some_and(|(user, primary)| primary == group_gid || members.contains(&user))
}

/// The role of a peer, or `None` when it may not connect at all: the service's own user and
/// root are operators, then members of `operators`, then members of `viewers`.
pub fn role_of(
    uid: u32,
    gid: u32,
    service_uid: u32,
    operators: Option<&str>,
    viewers: Option<&str>,
) -> Option<Role> {
    if uid == 0 || uid == service_uid {
        return Some(Role::Operator);
    }
    if operators.is_some_and(|g| is_member(uid, gid, g)) {
        return Some(Role::Operator);
    }
    if viewers.is_some_and(|g| is_member(uid, gid, g)) {
        return Some(Role::Viewer);
    }
    None
}

/// The name of the Unix user this process runs as (`uid N` when it has none).
pub fn current_user() -> String {
    own_uid().map_or_else(|| "unknown user".to_string(), user_name)
}

/// The uid this process runs as, from `/proc/self/status`.
pub fn own_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_self_are_operators_strangers_are_refused() {
        assert_eq!(role_of(0, 0, 1000, None, None), Some(Role::Operator));
        assert_eq!(role_of(1000, 1000, 1000, None, None), Some(Role::Operator));
        assert_eq!(role_of(4242, 4242, 1000, None, None), None);
        assert_eq!(user_name(0), "root");
        assert!(group_exists("root"));
        assert!(!group_exists("no-such-group-here"));
        // gid 0 is the root group: a peer whose primary gid is 0 is its member
        assert_eq!(
            role_of(4242, 0, 1000, None, Some("root")),
            Some(Role::Viewer)
        );
        assert_eq!(
            role_of(4242, 0, 1000, Some("root"), Some("root")),
            Some(Role::Operator)
        );
    }
}
