//! Validation of `POST /v1/members` before anything is proposed.
//!
//! An address is only ever set for a node that is not yet a member: a request naming an
//! existing member must repeat the addresses the cluster already has for it (a learner's
//! promotion does), or it is refused. Moving a node to another address is an explicit
//! remove-then-add by an admin; nobody can redirect peers or clients to another host by
//! "re-adding" a member. Addresses must be concrete: a Raft socket address with a port, and
//! an `http(s)://host:port` URL with nothing after it.

use std::net::SocketAddr;

use crate::server::error::{ApiError, ErrorCode};
use crate::server::wire::{AddMemberBody, MembersBody};

/// Checks an add (or promotion) against the members this node knows.
pub fn check_add(add: &AddMemberBody, members: &MembersBody) -> Result<(), ApiError> {
    if add.id == 0 {
        return Err(ApiError::bad_request("node id 0 is reserved"));
    }
    if let Some(address) = &add.raft_addr {
        check_raft_addr(address)?;
    }
    if let Some(url) = &add.url {
        check_url(url)?;
    }
    let Some(existing) = members.members.iter().find(|m| m.id == add.id) else {
        return Ok(());
    };
    let changes = |given: &Option<String>, known: &Option<String>| match (given, known) {
        (Some(given), Some(known)) => given != known,
        _ => false,
    };
    if changes(&add.raft_addr, &existing.raft_addr) || changes(&add.url, &existing.url) {
        return Err(ApiError::new(
            ErrorCode::MembershipRefused,
            format!(
                "node {} is already a member at {} ({}); its addresses do not change through \
                 POST /v1/members: remove it, then add it again",
                add.id,
                existing.raft_addr.as_deref().unwrap_or("-"),
                existing.url.as_deref().unwrap_or("-"),
            ),
        ));
    }
    Ok(())
}

fn check_raft_addr(text: &str) -> Result<(), ApiError> {
    let address: SocketAddr = text
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad raft_addr `{text}`: {e}")))?;
    if address.ip().is_unspecified() || address.port() == 0 {
        return Err(ApiError::bad_request(format!(
            "raft_addr `{text}` must name a reachable host and port"
        )));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), ApiError> {
    let bad = || ApiError::bad_request(format!("bad url `{url}`: use http(s)://host:port"));
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::wire::{MemberBody, MemberRole};

    fn members() -> MembersBody {
        MembersBody {
            members: vec![MemberBody {
                id: 2,
                role: "voter".into(),
                raft_addr: Some("127.0.0.1:7002".into()),
                url: Some("https://127.0.0.1:8002".into()),
            }],
            joint: false,
        }
    }

    fn add(id: u64, raft: &str, url: &str) -> AddMemberBody {
        AddMemberBody {
            id,
            raft_addr: Some(raft.into()),
            url: Some(url.into()),
            role: MemberRole::Voter,
        }
    }

    /// Goal: an existing member's addresses cannot be rewritten; repeating them (a
    /// promotion) and adding a new node are fine.
    #[test]
    fn existing_members_keep_their_addresses() {
        let known = members();
        let moved = check_add(&add(2, "10.9.9.9:7002", "https://127.0.0.1:8002"), &known);
        assert_eq!(moved.unwrap_err().code, ErrorCode::MembershipRefused);
        let redirected = check_add(&add(2, "127.0.0.1:7002", "https://evil.test:8002"), &known);
        assert_eq!(redirected.unwrap_err().code, ErrorCode::MembershipRefused);
        check_add(&add(2, "127.0.0.1:7002", "https://127.0.0.1:8002"), &known).unwrap();
        check_add(&add(4, "127.0.0.1:7004", "https://127.0.0.1:8004"), &known).unwrap();
    }

    /// Goal: malformed or vague addresses are refused.
    #[test]
    fn addresses_are_validated() {
        let known = members();
        for (raft, url) in [
            ("nonsense", "https://127.0.0.1:8004"),
            ("0.0.0.0:7004", "https://127.0.0.1:8004"),
            ("127.0.0.1:0", "https://127.0.0.1:8004"),
            ("127.0.0.1:7004", "ftp://127.0.0.1:8004"),
            ("127.0.0.1:7004", "https://127.0.0.1:8004/path"),
            ("127.0.0.1:7004", "https://user@127.0.0.1:8004"),
            ("127.0.0.1:7004", "https://127.0.0.1"),
        ] {
            assert!(
                check_add(&add(4, raft, url), &known).is_err(),
                "{raft} {url}"
            );
        }
        assert!(check_add(&add(0, "127.0.0.1:7004", "http://a:1"), &known).is_err());
    }
}
