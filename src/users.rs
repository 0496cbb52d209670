//! Users and groups, through the C library's name service switch (NSS): a group that comes
//! from LDAP, SSSD or `extrausers` counts exactly as one in `/etc/group` does, and membership
//! is what `id` would say (`getgrouplist`, which also sees memberships a directory does not
//! list on the group itself).

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// The user name of `uid`, or `uid N` when the system knows no name for it.
pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

/// The gid of the group called `name`, if the system has one.
pub fn group_id(name: &str) -> Option<u32> {
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|group| group.gid.as_raw())
}

/// Whether a group of that name exists.
pub fn group_exists(name: &str) -> bool {
    group_id(name).is_some()
}

/// Whether `uid`, whose primary group is `gid`, belongs to the group `name`: as its primary
/// group, or as a supplementary group the system lists for the user.
pub fn is_member(uid: u32, gid: u32, name: &str) -> bool {
    let Some(group) = group_id(name) else {
        return false;
    };
    if group == gid {
        return true;
    }
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(user_name) = CString::new(user.name) else {
        return false;
    };
    getgrouplist(&user_name, user.gid).is_ok_and(|groups| groups.contains(&Gid::from_raw(group)))
}

/// The uid this process runs as.
pub fn own_uid() -> u32 {
    Uid::current().as_raw()
}

/// The name of the Unix user this process runs as (not `$USER`, which anyone can set).
pub fn current_user() -> String {
    user_name(own_uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_known_and_in_its_group() {
        assert_eq!(user_name(0), "root");
        assert_eq!(group_id("root"), Some(0));
        assert!(group_exists("root"));
        assert!(!group_exists("no-such-group-here"));
        assert!(is_member(0, 0, "root"), "primary group");
        assert!(!is_member(0, 0, "no-such-group-here"));
        assert_eq!(user_name(4_000_000_000), "uid 4000000000");
    }
}
