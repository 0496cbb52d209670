//! Who is on the other end of the control socket: the peer's uid and gid come from the kernel
//! (`SO_PEERCRED`); names and group memberships from the system, through NSS (`crate::users`).

pub use crate::control::Role;
use crate::users::is_member;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_self_are_operators_strangers_are_refused() {
        assert_eq!(role_of(0, 0, 1000, None, None), Some(Role::Operator));
        assert_eq!(role_of(1000, 1000, 1000, None, None), Some(Role::Operator));
        assert_eq!(role_of(4242, 4242, 1000, None, None), None);
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
