//! Route normalisation: ids, UUIDs and hashes in a path become placeholders, so a route
//! is fit for a metric label (`/orders/42/items` → `/orders/{id}/items`).

use crate::record::{as_text, Text};

/// The path of a request target without its query, with variable segments replaced.
pub fn normalize(target: &str) -> Text {
    if !target.starts_with('/') {
        return normalize_other(target);
    }
    short_route(target).unwrap_or_else(|| long_route(target))
}

/// The route of an origin-form target (`/a/b?q`, nearly every request) whose route fits
/// in 64 bytes, built in one pass on the stack: each segment is copied, then replaced if
/// it is variable. `None` for longer ones.
fn short_route(target: &str) -> Option<Text> {
    let mut out = [0u8; 64];
    let (mut len, mut segment) = (1, 1);
    out[0] = b'/';
    for &b in &target.as_bytes()[1..] {
        if b == b'?' || b == b'#' {
            break;
        }
        if b == b'/' {
            len = replace_segment(&mut out, segment, len)?;
            segment = len + 1;
        }
        *out.get_mut(len)? = b;
        len += 1;
    }
    len = replace_segment(&mut out, segment, len)?;
    as_text(&out[..len]).map(Text::from)
}

/// Puts the placeholder of `out[start..end]`, if it has one, in its place: the new end.
fn replace_segment(out: &mut [u8; 64], start: usize, end: usize) -> Option<usize> {
    let Some(p) = placeholder(&out[start..end]) else {
        return Some(end);
    };
    let end = start + p.len();
    out.get_mut(start..end)?.copy_from_slice(p.as_bytes());
    Some(end)
}

/// [`short_route`] for any length: runs of plain segments are copied whole; only
/// placeholders break them.
fn long_route(target: &str) -> Text {
    let bytes = target.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let (mut start, mut copied, mut i) = (0, 0, 0);
    loop {
        let b = bytes.get(i).copied();
        if matches!(b, None | Some(b'/' | b'?' | b'#')) {
            if let Some(p) = placeholder(&bytes[start..i]) {
                out.push_str(&target[copied..start]);
                out.push_str(p);
                copied = i;
            }
            if b != Some(b'/') {
                out.push_str(&target[copied..i]);
                return Text::from(out);
            }
            start = i + 1;
        }
        i += 1;
    }
}

/// Any other form: absolute (`http://host/path`, to proxies) keeps only its path;
/// asterisk and authority forms stay as they are.
fn normalize_other(target: &str) -> Text {
    let end = target
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let path = &target[..end];
    let path = match path.find("://") {
        Some(i) => path[i + 3..].find('/').map_or("/", |j| &path[i + 3 + j..]),
        None => path,
    };
    if path.is_empty() {
        return "/".into();
    }
    if path.starts_with('/') {
        return normalize(path);
    }
    path.into()
}

fn placeholder(bytes: &[u8]) -> Option<&'static str> {
    if bytes.is_empty() || (bytes.len() < 16 && !bytes[0].is_ascii_digit()) {
        // Short and not a number: no placeholder applies (the common case, cheaply).
        return None;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(bytes) {
        return Some("{uuid}");
    }
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return Some("{hash}");
    }
    // Long tokens mixing letters and digits (base62 ids, session keys).
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    if bytes.len() >= 20
        && digits >= 4
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Some("{id}");
    }
    None
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::{long_route, normalize, short_route};

    #[test]
    fn the_stack_route_is_the_general_one() {
        let parts = [
            "",
            "a",
            "42",
            "v1",
            "é",
            "12345678901234567890",
            "3f2a9c1e-8b7d-4c6e-9f00-1234567890ab",
            "9f86d081884c7d659a2feaa0c55ad015",
            "aZ3kP9qL2mX7vB4nR8tY1",
            "?x=1",
            "#f",
            "ü/7",
        ];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    for target in [
                        format!("/{a}/{b}/{c}"),
                        format!("/{a}{b}/{c}"),
                        format!("/{a}/{b}{c}/"),
                    ] {
                        if let Some(short) = short_route(&target) {
                            assert_eq!(short, long_route(&target), "{target}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 4000, "{checked}");
        assert!(short_route(&format!("/{}", "x".repeat(64))).is_none());
    }

    #[test]
    fn variable_segments_become_placeholders() {
        assert_eq!(normalize("/orders/42/items?page=2"), "/orders/{id}/items");
        assert_eq!(
            normalize("/u/3f2a9c1e-8b7d-4c6e-9f00-1234567890ab"),
            "/u/{uuid}"
        );
        assert_eq!(
            normalize("/blob/9f86d081884c7d659a2feaa0c55ad015"),
            "/blob/{hash}"
        );
        assert_eq!(normalize("/s/aZ3kP9qL2mX7vB4nR8tY1"), "/s/{id}");
        assert_eq!(normalize("/query?1590632942"), "/query");
        assert_eq!(normalize("http://example.com/a/7"), "/a/{id}");
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/v1/users/me"), "/v1/users/me");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("/12#top"), "/{id}");
        assert_eq!(normalize("/a//7/"), "/a//{id}/");
        assert_eq!(normalize("http://example.com"), "/");
        assert_eq!(normalize("http://example.com/x?y=1"), "/x");
        assert_eq!(normalize("*"), "*");
        assert_eq!(normalize("example.com:443"), "example.com:443");
    }

    #[test]
    fn long_and_non_ascii_routes_are_whole() {
        // Past the 64 bytes built on the stack, at and across the boundary.
        for n in [55, 56, 60, 64, 65, 200] {
            let name = "x".repeat(n);
            assert_eq!(
                normalize(&format!("/{name}/42/é?q")),
                format!("/{name}/{{id}}/é")
            );
            assert_eq!(normalize(&format!("/42/{name}")), format!("/{{id}}/{name}"));
        }
        assert_eq!(normalize("/über/ç/123"), "/über/ç/{id}");
    }
}
