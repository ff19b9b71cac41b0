//! JSON text written straight into a `String`, byte for byte as `serde_json` writes it
//! (compact, the same escapes), but with a word-at-a-time check for the common string that
//! needs no escaping: the simulator writes gigabytes of short, plain strings, and
//! serde_json's byte-by-byte escape loop was a fifth of its time.

use serde_json::Value;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of the word is zero (exact as a yes/no answer).
fn has_zero_byte(x: u64) -> bool {
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// Whether `s` holds a byte JSON escapes: a control character, `"` or `\`.
fn needs_escape(s: &[u8]) -> bool {
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        if word_needs_escape(u64::from_le_bytes([
            w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
        ])) {
            return true;
        }
    }
    let tail = words.remainder();
    if tail.is_empty() {
        return false;
    }
    // The last bytes as one word, padded with a byte that needs no escape.
    let mut last = [b'a'; 8];
    last[..tail.len()].copy_from_slice(tail);
    word_needs_escape(u64::from_le_bytes(last))
}

fn word_needs_escape(x: u64) -> bool {
    // `x - 0x20…` borrows into a byte's high bit only for bytes below 0x20.
    let control = x.wrapping_sub(0x20 * ONES) & !x & HIGHS != 0;
    control || has_zero_byte(x ^ (b'"' as u64 * ONES)) || has_zero_byte(x ^ (b'\\' as u64 * ONES))
}

/// `s` as a JSON string, quoted.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push_str("\"");
    push_unquoted(out, s);
    out.push_str("\"");
}

/// `s` escaped for the inside of a JSON string.
pub fn push_unquoted(out: &mut String, s: &str) {
    if needs_escape(s.as_bytes()) {
        push_escaped(out, s);
    } else {
        out.push_str(s);
    }
}

/// The escapes serde_json writes: the short forms, else `\u00XX` in lower-case hex.
fn push_escaped(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        plain = i + 1;
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(short);
        }
    }
    out.push_str(&s[plain..]);
}

pub fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// A value's compact JSON text, as `serde_json::to_writer` writes it.
pub fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                push_int(out, i);
            } else if let Some(u) = n.as_u64() {
                push_int(out, u);
            } else {
                // Floats: serde_json's `Display` of a number is its serialized form.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, key);
                out.push(':');
                push_value(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s);
        out
    }

    #[test]
    fn strings_come_out_as_serde_json_writes_them() {
        let mut samples: Vec<String> = [
            "",
            "plain",
            "exactly8",
            "a \"quoted\" word",
            "back\\slash at 9",
            "tab\there, newline\n, cr\r, bell\u{7}, nul\u{0}, esc\u{1b}, bs\u{8}, ff\u{c}",
            "non-ASCII: ü, 日本, 🚀 and DEL \u{7f}",
            "0123456789abcdef\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every byte below 0x80 at every position of a 17-byte string.
        for b in 0u8..0x80 {
            for at in 0..17 {
                let mut s = vec![b'x'; 17];
                s[at] = b;
                samples.push(String::from_utf8(s).unwrap());
            }
        }
        for s in &samples {
            assert_eq!(text(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn values_come_out_as_serde_json_writes_them() {
        let v = json!({"b": [1, -2, 3.5, u64::MAX, null, true, false, "x\"y"],
                       "a": {"nested": {}, "list": []}, "c": "ü\n"});
        let mut out = String::new();
        push_value(&mut out, &v);
        assert_eq!(out, serde_json::to_string(&v).unwrap());
    }
}
